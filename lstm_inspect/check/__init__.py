"""One checked run: the schedule's steps against the mirror's tensors (`inspection`, `observe`),
and the evidence measured on them (`evidence`)."""
