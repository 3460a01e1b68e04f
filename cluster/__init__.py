"""Ray cluster plumbing: connecting to (or starting) Ray, and discovering its nodes.  No job logic."""
