"""FLAN instruction templates: loading, rendering, lint on the shared data, the held-out rule."""

from __future__ import annotations

import json
import textwrap

import pytest

from unseen.core.data import load_dataset
from unseen.core.errors import UnseenError
from unseen.instruct import (
    heldout_datasets,
    lint,
    load_records,
    load_templates,
    render,
    training_datasets,
)

DATASETS = [
    "rte", "cb", "snli", "boolq", "copa", "piqa", "arc_easy", "arc_challenge", "openbookqa", "sst2", "mr", "cr",
    "mpqa", "subj", "trec", "ag_news", "mrpc", "wic", "wsc", "multi30k_en_de", "multi30k_en_fr", "webnlg",
    "creak", "ecqa", "qasc", "sensemaking", "strategyqa",  # FLAN v2 chain-of-thought data
]
RTE_RECORD = {  # rte validation[0]
    "premise": "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, "
    "according to the Christopher Reeve Foundation.",
    "hypothesis": "Christopher Reeve had an accident.",
    "label": 1,
}
needs_data = pytest.mark.needs_data


@pytest.fixture(scope="module")
def tasks():
    return load_templates()


def write_yaml(directory, name, text):
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_every_dataset_has_about_ten_templates(tasks):
    assert sorted(tasks) == sorted(DATASETS)
    for name, task in tasks.items():
        assert 9 <= len(task.templates) <= 12, name
        assert 1 <= sum(t.turned_around for t in task.templates) <= 3, name
        assert all(t.id.startswith(name) for t in task.templates), name


@needs_data
def test_lint_passes_on_the_shared_data(tasks):
    problems = lint(tasks, max_examples=200)
    assert problems == [], "\n".join(map(str, problems))


@needs_data
def test_render_known_rte_example(tasks):
    record = load_dataset("rte", "validation")[0]
    assert {key: record[key] for key in RTE_RECORD} == RTE_RECORD
    example = render(tasks["rte"].template("rte_given_passage"), record)
    assert example.input == (
        "Dana Reeve, the widow of the actor Christopher Reeve, has died of lung cancer at age 44, according to the "
        "Christopher Reeve Foundation.\n\nGiven the passage above, is it true that \"Christopher Reeve had an "
        "accident.\"?\n\nOPTIONS:\n- yes\n- no"
    )
    assert example.target == "no"
    assert example.answer_choices == ["yes", "no"]
    assert example.target_index == 1
    assert example.references == ["no"]


def test_options_suffix(tasks):
    template = tasks["rte"].template("rte_premise_hypothesis")
    with_options = render(template, RTE_RECORD)
    without = render(template, RTE_RECORD, options_suffix=False)
    assert with_options.input == without.input + "\n\nOPTIONS:\n- yes\n- no"
    assert without.answer_choices == ["yes", "no"] and without.target_index == 1
    # per-example choices (COPA) are listed in the example's own order
    copa = {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
            "choice2": "Water flowed from the spout.", "question": "effect", "label": 1}
    example = render(tasks["copa"].template("copa_what_was"), copa)
    assert example.input == ("The man turned on the faucet. What was the effect?\n\nOPTIONS:\n"
                             "- The toilet filled with water.\n- Water flowed from the spout.")
    assert (example.target, example.target_index) == ("Water flowed from the spout.", 1)


def test_multiple_choice_answer_key_gives_the_target_index(tasks):
    record = {"question": "Which gas do plants take in?", "answerKey": "B",
              "choices": {"text": ["oxygen", "carbon dioxide", "helium"], "label": ["A", "B", "C"]}}
    example = render(tasks["arc_easy"].template("arc_easy_plain"), record)
    assert (example.target, example.target_index) == ("carbon dioxide", 1)
    assert example.input.endswith("OPTIONS:\n- oxygen\n- carbon dioxide\n- helium")


def test_turned_around_template_filter(tasks):
    template = tasks["rte"].template("rte_write_entailed")
    assert template.turned_around and template.metric == "bleu" and not template.classification
    assert render(template, RTE_RECORD) is None  # label 1: not entailed, filtered out
    example = render(template, {**RTE_RECORD, "label": 0})
    assert example.target == "Christopher Reeve had an accident."
    assert "OPTIONS" not in example.input
    assert example.answer_choices is None and example.target_index is None


def test_generative_references(tasks):
    record = {"triples": ["Aarhus | leaderName | Jacob_Bundsgaard"], "category": "City",
              "references": ["The leader of Aarhus is Jacob Bundsgaard.", "Jacob Bundsgaard leads Aarhus."]}
    example = render(tasks["webnlg"].template("webnlg_generate"), record)
    assert example.input == "Generate a sentence about this data: Aarhus | leaderName | Jacob Bundsgaard"
    assert example.target == record["references"][0] and example.references == record["references"]
    assert render(tasks["webnlg"].template("webnlg_generate"), {**record, "references": []}) is None


RTE_HEADER = """\
    dataset: rte
    cluster: nli
    metric: accuracy
    splits: {train: train, eval: validation}
    answer_choices: ["yes", "no"]
    templates:
"""


def one_line_error(excinfo, *parts):
    message = str(excinfo.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, message
    return message


def test_unknown_field_names_file_template_and_field(tmp_path):
    path = write_yaml(tmp_path, "rte.yaml", RTE_HEADER + """\
      - id: rte_typo
        input: "{{premis}}\\n\\nIs it true that {{hypothesis}}?"
        target: "{{answer_choices[label]}}"
        options: true
    """)
    template = load_templates(tmp_path)["rte"].template("rte_typo")
    with pytest.raises(UnseenError) as excinfo:
        render(template, RTE_RECORD)
    message = one_line_error(excinfo, str(path), "template rte_typo", "input", "unknown field 'premis'")
    assert message == f"{path}: template rte_typo: input: unknown field 'premis'"


def test_label_out_of_range_of_answer_choices(tasks):
    template = tasks["rte"].template("rte_given_passage")
    for label in (2, -1):
        with pytest.raises(UnseenError) as excinfo:
            render(template, {**RTE_RECORD, "label": label})
        one_line_error(excinfo, "templates/rte.yaml", "template rte_given_passage", "target",
                       f"label {label} is out of range of the 2 answer choices")


def test_empty_split(tmp_path):
    data = tmp_path / "data" / "nlp" / "rte"
    data.mkdir(parents=True)
    records = [RTE_RECORD, {**RTE_RECORD, "label": 0}]
    (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (data / "validation.jsonl").write_text("", encoding="utf-8")
    task = load_templates()["rte"]
    assert len(load_records(task, "train", data_dir=tmp_path / "data")) == 2
    with pytest.raises(UnseenError) as excinfo:
        load_records(task, "eval", data_dir=tmp_path / "data")
    one_line_error(excinfo, "templates/rte.yaml", "splits.eval", "'validation'", "no records")
    problems = lint({"rte": task}, data_dir=tmp_path / "data", max_examples=5)
    assert [p.source for p in problems] == ["templates/rte.yaml"]
    assert "split 'validation' of dataset 'rte' has no records" in problems[0].message


@pytest.mark.parametrize("template, expected", [
    ('  - {id: t, input: "x", target: "y", optons: true}\n', "template t: unknown key 'optons'"),
    ('  - {id: t, input: "{{premise", target: "y"}\n', "template t: input: Jinja syntax error"),
    ('  - {id: t, input: "{{premise}}", target: "y", metric: rouge}\n', "template t: metric: 'rouge' is not one of"),
    ('  - {id: t, input: "{{premise}}"}\n', "template t: missing key 'target'"),
    ('  - {id: t, input: "{{premise}}", target: "y", answer_choices: [yes, no]}\n',
     "template t: answer_choices: quote yes/no"),
])
def test_bad_yaml_is_one_line_at_load(tmp_path, template, expected):
    path = write_yaml(tmp_path, "rte.yaml", RTE_HEADER + "  " + template)
    with pytest.raises(UnseenError) as excinfo:
        load_templates(path)
    one_line_error(excinfo, str(path), expected)


def test_lint_catches_flan_style_bugs(tmp_path):
    data = tmp_path / "data" / "nlp" / "rte"
    data.mkdir(parents=True)
    for split in ("train", "validation"):
        (data / f"{split}.jsonl").write_text(json.dumps(RTE_RECORD) + "\n", encoding="utf-8")
    write_yaml(tmp_path, "rte.yaml", RTE_HEADER + """\
      - {id: rte_a, input: "Premise: {{premise}}\\nHypothesis: {{hypothesis}}n\\n", target: "{{answer_choices[label]}}"}
      - {id: rte_b, input: "Premise: {{premise}}\\nHypothesis: {{hypothesis}}n\\n", target: "{{answer_choices[label]}}"}
      - {id: rte_c, input: "{premise} {{hypothesis}}", target: "{{answer_choices[label]}}"}
      - {id: rte_d, input: "{{premise}}", target: "{{hypothesis}}", answer_choices: ["yes", "no"]}
      - {id: rte_e, input: "{{premise}} {", target: "{{answer_choices[label]}}"}
    """)
    messages = [str(p) for p in lint([load_templates(tmp_path / "rte.yaml")["rte"]], data_dir=tmp_path / "data")]
    expected = [
        "template rte_a: input: 'n' right after '}}'",
        "template rte_b: same input and target as template rte_a",
        "template rte_c: input: stray '{premise}' in the rendered text (split train, example 0)",
        "template rte_d: target 'Christopher Reeve had an accident.' is not among the answer choices",
        "template rte_e: input: unbalanced braces",
    ]
    for part in expected:
        assert any(part in message for message in messages), (part, messages)


def test_lint_reports_unused_fields_and_too_many_turned_around(tmp_path):
    lines = ["dataset: mrpc", "cluster: paraphrase", "metric: accuracy", "splits: {eval: validation}",
             'answer_choices: ["no", "yes"]', "templates:",
             '  - {id: mrpc_one, input: "{{sentence1}}", target: "{{answer_choices[label]}}", options: true}']
    lines += [f'  - {{id: mrpc_t{i}, input: "Say it again ({i}): {{{{sentence1}}}}", target: "{{{{sentence1}}}}", '
              "turned_around: true}" for i in range(4)]
    (tmp_path / "mrpc.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    messages = [str(p) for p in lint([load_templates(tmp_path)["mrpc"]], data_dir=tmp_path)]
    assert any("record field(s) 'sentence2' used by no template" in m for m in messages), messages
    assert any("4 turned-around templates (at most 3)" in m for m in messages), messages


def test_heldout_rule_from_clusters_yaml():
    nli = heldout_datasets("nli")
    assert {"rte", "cb", "snli", "mrpc"} <= set(nli)  # holding out NLI also removes paraphrase
    training = training_datasets("nli")
    assert not set(training) & set(nli)
    assert {"boolq", "copa", "sst2", "arc_easy", "webnlg", "multi30k_en_de"} <= set(training)
    assert "rte" in training_datasets("paraphrase") and "mrpc" not in training_datasets("paraphrase")
    assert set(heldout_datasets(["sentiment", "commonsense"])) == {"sst2", "mr", "cr", "mpqa", "copa", "piqa", "ecqa",
                                                                   "sensemaking"}
    with pytest.raises(UnseenError, match="unknown cluster 'nlii'"):
        heldout_datasets("nlii")


def test_user_dataset_joins_its_cluster(tmp_path):
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "test.jsonl").write_text(json.dumps({"text": "great", "label": 1}) + "\n", encoding="utf-8")
    write_yaml(tmp_path, "toy.yaml", """\
        dataset: toy
        cluster: sentiment
        metric: accuracy
        splits: {eval: test}
        answer_choices: ["negative", "positive"]
        templates:
          - {id: toy_polarity, input: "{{text}}\\nPositive or negative?", target: "{{answer_choices[label]}}",
             options: true}
    """)
    tasks = load_templates(tmp_path)
    assert "toy" in heldout_datasets("sentiment", tasks) and "toy" not in training_datasets("sentiment", tasks)
    assert lint({"toy": tasks["toy"]}) == []
    example = render(tasks["toy"].templates[0], load_records(tasks["toy"], "eval")[0])
    assert (example.target, example.input) == ("positive",
                                               "great\nPositive or negative?\n\nOPTIONS:\n- negative\n- positive")


def _cli_app():
    from unseen.cli.instruct import app

    return app


@needs_data
def test_cli_templates_and_lint():
    from typer.testing import CliRunner

    app = _cli_app()
    runner = CliRunner()
    result = runner.invoke(app, ["templates", "rte", "--n", "1", "--template", "rte_given_passage"])
    assert result.exit_code == 0, result.output
    assert "rte_given_passage" in result.output and "OPTIONS" in result.output
    result = runner.invoke(app, ["lint", "--dataset", "cb", "--max-examples", "20"])
    assert result.exit_code == 0, result.output
    assert "ok: 1 datasets" in result.output


COT_DATASETS = ["creak", "ecqa", "qasc", "sensemaking", "strategyqa"]


@needs_data
@pytest.mark.parametrize("name", COT_DATASETS)
def test_chain_of_thought_datasets_lint_clean_on_every_split(tasks, name):
    """Every record of both splits (not only the first 200): a chain-of-thought target must parse back."""
    assert lint({name: tasks[name]}, max_examples=10_000) == []
    task = tasks[name]
    cot = [t for t in task.templates if t.chain_of_thought]
    assert len(cot) == 2 and all(t.options and t.classification for t in cot)
    record = load_records(task, "eval")[0]
    example = render(cot[0], record)
    assert example.target.startswith(record["rationale"]) and example.answer == record["choices"][record["label"]]
    assert example.target_index == record["label"] and "OPTIONS:" in example.input


def test_flan_v2_cluster_placement():
    assert {"ecqa", "sensemaking"} <= set(heldout_datasets("commonsense"))
    assert {"creak", "strategyqa", "qasc"} <= set(heldout_datasets("closed_book_qa"))
