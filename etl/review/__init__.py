"""After the build: a review sample for humans (``sample``) and the spreadsheet round trip
(``spreadsheet``: write the sample as .xlsx, read verdicts back)."""
