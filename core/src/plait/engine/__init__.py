"""The engine: flow and task state machines (``runner``) and executors (``executors``)."""
