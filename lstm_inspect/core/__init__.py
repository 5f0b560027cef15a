"""The core: the validated setup (`spec`, its `choices`, the `workflow` of calls with one row per
call kind), what each Keras does on each backend (`facts`, `hooks`), the data order (`order`) and
the schedule of steps with each slot's predicted start (`schedule`). Pure numpy: no torch."""
