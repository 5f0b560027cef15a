"""The snippets `--emit` prints: runnable Keras and PyTorch programs that reproduce a setup's state
handling and print where each batch's states start."""
