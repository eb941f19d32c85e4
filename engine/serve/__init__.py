"""`studio-engine serve`: a long-lived inference process for the playground, speaking JSON lines on
stdin/stdout (docs/protocol.md, "serve"). `protocol` is import-light (pydantic only) so the studio
can build and check requests with it; `models`, `generation` and `server` load torch."""
