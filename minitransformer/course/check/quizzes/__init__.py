"""End-of-chapter questions, one module per chapter (chN.py with QUESTIONS); see check/practice.py."""
