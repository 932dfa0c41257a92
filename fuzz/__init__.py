"""Coverage-guided fuzzing of every parser (atheris): see fuzz/README.md."""
