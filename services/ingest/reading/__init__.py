"""Reading an import's file: its format (``file_format``), records and first pass (``records``), the rules for one
row (``checks``), and the readers that yield valid and refused rows in batches: ``csv_rows`` for uploads,
``json_rows`` and ``row_file`` for contacts sent as JSON. Nothing here knows about Kafka or the database."""
