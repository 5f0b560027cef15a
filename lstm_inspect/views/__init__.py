"""Views: the finished run (and its steps, streamed) turned into a table, a timeline, JSON,
markdown, CSV or exported files. They render; they never run anything."""
