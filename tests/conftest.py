"""The suite runs with the allocator setting every actionnet-edge command uses (malloc.py)."""
from actionnet_edge.malloc import keep_freed_memory

keep_freed_memory()
