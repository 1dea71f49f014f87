"""End-of-chapter questions, one module per chapter (chNN.py with QUESTIONS); see check/practice.py."""
