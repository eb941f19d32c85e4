"""Shipping a model: GGUF files written with the `gguf` package (gguf_file.py, vocab.py, weights.py,
and kquants.py for the k-quants it cannot write), an Ollama Modelfile (modelfile.py), and the check
that the files answer like the model they came from (verify.py). Heavy: numpy, gguf, torch."""
