"""The lag monitor: polls every consumer group's committed offsets and the partitions' end offsets, independent of
the consumers, and reports lag in messages and seconds with a Burrow-style status."""
