"""Speak Guidepost's streamed answer as it arrives: the hazard warning first, then each sentence.

    python examples/speak_stream.py http://127.0.0.1:5000 photo.jpg
"""
import json
import sys

import requests


def speak(text: str) -> None:
    print(text, flush=True)  # put pyttsx3 or the platform's speech engine here


url, photo = sys.argv[1], sys.argv[2]
with open(photo, "rb") as image, requests.post(f"{url}/process", files={"image": image}, stream=True, timeout=60,
                                               headers={"Accept": "text/event-stream"}) as response:
    if response.headers.get("Content-Type", "").startswith("application/json"):  # a mistake: plain JSON error
        sys.exit(response.json()["error"]["message"])
    event = None
    for line in response.iter_lines(decode_unicode=True):
        if line.startswith("event: "):
            event = line[len("event: "):]
        elif line.startswith("data: "):
            data = json.loads(line[len("data: "):])
            if event == "hazard" and data["warning"]:
                speak(data["warning"])
            elif event == "sentence":
                speak(data["text"])
            elif event == "error":
                sys.exit(data["error"]["message"])
