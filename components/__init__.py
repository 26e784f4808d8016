"""The dev server components: one AWS concern per module, composed by DevServer."""
