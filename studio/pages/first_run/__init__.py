"""The first-run screen: no engine was found, and how to get one."""
