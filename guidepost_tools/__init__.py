"""Guidepost's tools: batch inference, evaluation and the load client. They use the server package; it never imports them."""
