"""Reading danmaku dumps (``readers``) and counting their unique texts (``unique``)."""
