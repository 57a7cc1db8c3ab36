"""Live audiences: segments whose membership follows events within about a second — what a tree reads
(dependencies), its compiled member query (compiled), the membership decision (membership), publishing entries and
exits (publish) and what time alone changes (sweep). See docs/realtime.md."""
