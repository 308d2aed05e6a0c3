"""Test strings for tokenizer comparisons: hand-picked edge cases plus seeded random mixtures."""
import random

EDGE_CASES = [
    "", " ", "  ", "\n", "\n\n", "\t", " \t \n ", "Hello world", " Hello world", "Hello  world ",
    "   leading spaces", "trailing spaces   ", "a\nb\r\nc\rd", "line one\n\nline two\n\n\n",
    "tab\tseparated\tvalues", "don't can't I'm you're we've they'll he'd", "DON'T CAN'T I'M",
    "über Straße naïve café Ærø", "日本語のテキストです。", "中文文本，包含标点。", "한국어 텍스트",
    "emoji 🎉🎉 👩‍👩‍👧 🇩🇪 ❤️", "math ∑∫√∞ ≤ ≥ ≠", "1234567890", "3.14159 2,718 1e-10 -42 +7",
    "x = 10000000000000000000", "def f(x):\n    return x ** 2\n", "if (a && b) { return c->d[0]; }",
    "<html><body class=\"x\">Hi</body></html>", "{\"json\": [1, 2, {\"k\": null}]}",
    "<s>", "</s>", "<unk>", "text<s>inside</s>text", " <s> spaced </s> ", "<s><s></s></s>",
    "<|im_start|>user\nhello<|im_end|>", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>",
    "<|endoftext|>x<|endoftext|>", "<|im_start|><|im_end|>", "<0x0A>", "▁ already metaspace ▁▁",
    "Ġ byte level Ġ char", "\u00a0non-breaking\u00a0space", "zero\u200bwidth", "control\u0001\u0002chars",
    "ﬁ ligature Å vs Å (NFC vs NFD)", "ＦＵＬＬＷＩＤＴＨ", "ǅ title case", "😀" * 20,
    "a" * 300, "ab " * 200, "\n" * 50, " " * 37, "Ελληνικά κείμενο", "русский текст, Ёжик",
    "עברית", "العربية", "हिन्दी पाठ", "ไทย", "tiếng Việt", "'s 't 're 've 'm 'll 'd", "''''",
    "end with newline\n", "  \n  mixed  \n\t\n", "A" * 1000 + " " + "b" * 1000,
]

ALPHABET = (
    list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
    + list(" " * 12 + "\n\n\t.,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`")
    + list("äöüßéèêñçøåæœ") + list("日本語中文한국") + ["🎉", "👍", "🇫🇷", "\u200d", "\u00a0", "\r\n"]
    + ["<s>", "</s>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "'s", "'ll", "   ", "\n\n\n"]
)


def random_strings(n, seed=1234):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.choice([1, 2, 5, 10, 30, 80, 200])
        out.append("".join(rng.choice(ALPHABET) for _ in range(length)))
    return out


def corpus():
    return EDGE_CASES + random_strings(400)
