"""Data and memory: the stateful layout of long series, the user's own data file (`--data`), and
what a command will hold against what this process may hold."""
