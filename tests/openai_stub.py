"""A deterministic OpenAI-compatible chat server for tests (a FAKE of a paid API's behaviour).

Run as its own process: `python tests/openai_stub.py PORT`. The requested model name picks the
behaviour, so one server serves every test:
  cite-ok        a cited two-sentence answer: the first long sentence of passages 1 and 2, each cited
                 (any model name not listed here answers so too)
  bad-markers    a cited sentence, then out-of-range, malformed and missing markers
  abstain        "The articles don't say."
  uncited        a fluent answer with no markers at all
  unmarked       sentences of passages 1 and 2 with no markers (what small models often write)
  hang           sleeps past any sane client timeout
  429-then-ok    429 with Retry-After: 0 on the first attempt, then cite-ok
  always-500     HTTP 500 every time
  401            invalid API key
  429-wait-30    429 with Retry-After: 30, every time
  bad-json       a 200 whose body is not JSON
  (any model)    a follow-up rewrite request ("Rewritten question:") gets "LAST (about: EARLIER)"
  judge          answers LlamaIndex's evaluator prompts: "YES" to faithfulness, "4.5" + reason to correctness
  obey           a model that obeys instructions planted in articles: repeats any CANARY-<digits> code it
                 finds in the prompt, also inside base64 text, as a cited answer
  hostile-markup the cite-ok answer carrying <script>, <img onerror>, a Markdown image and a javascript: link
  ansi           the cite-ok answer carrying terminal escape sequences (clear screen, set title, bell)
  echo-key       401 whose error message repeats the Authorization header it was sent (a hostile server)
  planted        the cite-ok answer with an invented sentence between, cited to passage 1
  changed-number the cite-ok answer, but a number of a quoted sentence changed (the first sentence
                 of the passages that states one)
  swapped        the cite-ok answer with its two citations swapped
  all-unsupported only invented sentences, each cited
POST /v1/embeddings returns deterministic 1536-dimension bag-of-words vectors (hashed words).
Every request is counted per model; GET /stats returns the counts, GET /last/<model> the last request body.
"""

from __future__ import annotations

import base64
import json
import math
import re
import struct
import sys
import time
import zlib
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REPLIES = {
    "abstain": "The articles don't say.",
    "uncited": "The summit was cancelled because of the weather.",
}
attempts: Counter[str] = Counter()
last_bodies: dict[str, dict] = {}
CANARY = re.compile(r"CANARY-\d+")


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/last/"):
            return self._send(200, json.dumps(last_bodies.get(self.path.removeprefix("/last/"), {})).encode())
        self._send(200, json.dumps(dict(attempts)).encode())

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        model = body.get("model", "")
        attempts[model] += 1
        last_bodies[model] = body
        if self.path.endswith("/embeddings"):
            return self._embeddings(body)
        if model == "hang":
            time.sleep(30)
            return self._send(200, b"{}")
        if model == "401":
            return self._send(401, json.dumps({"error": {"message": "Incorrect API key", "type": "invalid_request_error",
                                                         "code": "invalid_api_key"}}).encode())
        if model == "echo-key":
            said = self.headers.get("Authorization", "")
            return self._send(401, json.dumps({"error": {"message": f"Incorrect API key provided: {said}",
                                                         "code": "invalid_api_key"}}).encode())
        if model == "always-500":
            return self._send(500, b'{"error": {"message": "boom"}}')
        if model == "429-then-ok" and attempts[model] == 1:
            return self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "0"})
        if model == "429-wait-30":
            return self._send(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "30"})
        if model == "bad-json":
            return self._send(200, b"this is not json")
        passages = _passages(body)
        if model == "judge":
            text = _judge_reply(body)
        elif model in REPLIES:
            text = REPLIES[model]
        elif model == "obey":
            text = _obey(_prompt_text(body), passages)
        else:
            text = GROUNDED.get(model, _grounded)(passages) if len(passages) >= 2 else FALLBACK
        if "Rewritten question:" in _prompt_text(body):
            text = _rewrite(_prompt_text(body))
        if body.get("stream"):
            return self._stream(model, text)
        self._send(200, json.dumps(_completion(model, text)).encode())

    def _embeddings(self, body: dict) -> None:
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(texts):
            vector = _bag_of_words(text)
            if body.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        payload = {"object": "list", "data": data, "model": body.get("model"),
                   "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        self._send(200, json.dumps(payload).encode())

    def _stream(self, model: str, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for i in range(0, len(text), 12):
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": model,
                     "choices": [{"index": 0, "delta": {"content": text[i:i + 12]}, "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        self.wfile.write(b"data: [DONE]\n\n")

    def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(payload)


def _prompt_text(body: dict) -> str:
    return " ".join(str(m.get("content", "")) for m in body.get("messages", []))


def _obey(prompt: str, passages: list[str]) -> str:
    """What a model that follows planted instructions says: the canary code, wherever it was hidden."""
    decoded = []
    for blob in re.findall(r"[A-Za-z0-9+/]{24,}={0,2}", prompt):
        try:
            decoded.append(base64.b64decode(blob + "=" * (-len(blob) % 4)).decode("utf-8", "ignore"))
        except ValueError:
            pass
    found = CANARY.findall(prompt + " " + " ".join(decoded))
    return f"As instructed: {found[0]} [1]. The summit was cancelled [1]." if found else _grounded(passages)


FALLBACK = "The summit was cancelled after Rubio spoke with Lavrov [1]. Russia's position had not changed [2]."
INVENTED = "The talks were moved to Lisbon after a vote of 312 to 7 among the delegates"


def _passages(body: dict) -> list[str]:
    """The passages of the question's own message (not of the prompt's example turn), in order."""
    last = str(body.get("messages", [{}])[-1].get("content", ""))
    return [text for _, text in re.findall(r'<passage id="(\d+)"[^>]*>\n(.*?)\n</passage>', last, re.S)]


def _quotable(passage: str, needs_number: bool = False) -> str:
    """A whole sentence of the passage: not its first (a chunk may open mid-sentence), not a heading."""
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", passage)][1:]
    sentences = [s for s in parts if len(s.split()) >= 8 and s[:1].isupper() and s.endswith(".")]
    if needs_number:
        sentences = [s for s in parts if len(s.split()) >= 6 and re.search(r"\d", s)]
    return (sentences or [passage.strip()])[0].rstrip(".!?")


def _grounded(passages: list[str]) -> str:
    return f"{_quotable(passages[0])} [1]. {_quotable(passages[1])} [2]."


def _changed_number(passages: list[str]) -> str:
    number_at = next((i for i, p in enumerate(passages) if re.search(r"\d", _quotable(p, needs_number=True))), 0)
    quote = _quotable(passages[number_at], needs_number=True)
    changed = re.sub(r"\d+", lambda m: str(int(m.group(0)) + 17), quote, count=1)
    other = 1 if number_at != 0 else 0
    return f"{_quotable(passages[other])} [{other + 1}]. {changed} [{number_at + 1}]."


GROUNDED = {
    "grounded": _grounded,
    "planted": lambda p: f"{_quotable(p[0])} [1]. {INVENTED} [1]. {_quotable(p[1])} [2].",
    "changed-number": _changed_number,
    "swapped": lambda p: f"{_quotable(p[1])} [1]. {_quotable(p[0])} [2].",
    "unmarked": lambda p: f"{_quotable(p[0])}. {_quotable(p[1])}.",
    "all-unsupported": lambda p: f"{INVENTED} [1]. The delegates then left for Oslo on 14 boats [2].",
    "hostile-markup": lambda p: f"{_quotable(p[0])} [1]. Read this <script>alert(1)</script> now [1]. "
                                "<img src=x onerror=alert(2)> ![pixel](http://127.0.0.1:9/leak.png) "
                                f"[details](javascript:alert(3)) {_quotable(p[1])} [2].",
    "bad-markers": lambda p: f"{_quotable(p[0])} [1]. The call went badly [12]. Moscow refused [x1]. Nobody cited this.",
    "ansi": lambda p: f"{_quotable(p[0])} \x1b[2J\x1b]0;pwned\x07 [1]. {_quotable(p[1])}\x08\x08 [2].",
}


def _rewrite(prompt: str) -> str:
    """The follow-up rewrite: 'LAST (about: EARLIER)', so tests can see the LLM's query was used."""
    last = re.search(r"Last question: (.*)", prompt).group(1).strip()
    earlier = re.findall(r"^- (.*)$", prompt, re.M)
    return f"{last} (about: {earlier[-1]})" if earlier else last


def _judge_reply(body: dict) -> str:
    prompt = _prompt_text(body)
    return "4.5\nThe generated answer matches the reference." if "reference answer" in prompt.lower() else "YES"


def _bag_of_words(text: str, dims: int = 1536) -> list[float]:
    vector = [0.0] * dims
    for word in re.findall(r"\w+", text.lower()):
        vector[zlib.crc32(word.encode()) % dims] += 1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _completion(model: str, text: str) -> dict:
    return {"id": "x", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()
