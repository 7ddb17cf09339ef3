"""One module per page, each with a ``render()`` that runs on its own (``AppTest.from_string``)."""
