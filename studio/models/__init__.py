"""Qt-free models of the studio: the store, engine settings and schemas, and the results and pipelines the pages show."""
