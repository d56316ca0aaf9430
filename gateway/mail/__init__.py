"""Reading mail, and nothing else: parsing, headers, HTML to text, reply stripping, classification,
bounces, authentication results. Pure functions of the bytes (and of the settings where a sender's
authentication is judged): no database, no files, no network."""
