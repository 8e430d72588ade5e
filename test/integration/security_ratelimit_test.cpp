// placeholder: filled in by the security work of issue 6.
