"""Guidepost through the official OpenAI SDK: a streamed answer, printed as it arrives (the warning first).

    GUIDEPOST_KEY=<one of GUIDEPOST_API_KEYS> python examples/openai_stream.py http://127.0.0.1:5000 photo.jpg
"""
import base64
import os
import sys

from openai import OpenAI

url, photo = sys.argv[1], sys.argv[2]  # e.g. http://127.0.0.1:5000 photo.jpg
client = OpenAI(base_url=f"{url}/v1", api_key=os.environ.get("GUIDEPOST_KEY", "none"))  # a key, or anything
image = "data:image/jpeg;base64," + base64.b64encode(open(photo, "rb").read()).decode()
for chunk in client.chat.completions.create(model="guidepost", stream=True, messages=[{"role": "user", "content": [
        {"type": "text", "text": "Is it safe to cross?"}, {"type": "image_url", "image_url": {"url": image}}]}]):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)  # the hazard warning arrives first
print()
