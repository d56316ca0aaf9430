"""The long-running parts and what drives them: ``serve``, its processor process, the sweep, the broker
and its actors, and the commands that push stored mail through the pipeline (import, replay)."""
