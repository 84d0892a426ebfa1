"""methods: one file per PEFT method, one contract (DESIGN.md §3). Filled in by issue [C]."""
