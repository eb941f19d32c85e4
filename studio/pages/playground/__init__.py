"""The Playground page: prompt variants × models, chat, diffs and batch evaluation."""
