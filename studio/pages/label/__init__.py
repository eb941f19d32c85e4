"""The Label page: candidates, labeling queues, agreement and sharing."""
