"""Training plumbing shared by the job recipes: model construction, the events callback, collators."""
