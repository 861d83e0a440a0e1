"""YAML with line marks: the one loader for front matter and quiz blocks.

Composed nodes keep the line of every key and value (and show a key given twice), which a
loaded dict does not; the data is constructed from those same nodes, so the text is
parsed once. Safe types only. No Django here.
"""

from __future__ import annotations

from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it: the same safe types, several times faster.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlProblem(Exception):
    """Text that is not valid YAML: where the parser gave up (0-based line) and why."""

    def __init__(self, *, line: int, problem: str, context: str = "", context_line: int = 0):
        super().__init__(problem)
        self.line = line
        self.problem = problem
        self.context = context  # e.g. "while scanning a quoted scalar", when it helps
        self.context_line = context_line

    def message(self, *, first_line: int) -> str:
        """The problem, naming the file line where its cause starts when that is earlier
        (an unclosed quote: the parser gives up at the end, the cause is on its line)."""
        if not self.context:
            return self.problem
        return (
            f"{self.problem} ({self.context} that starts on line {first_line + self.context_line})"
        )


def yaml_load_marked(text: str) -> tuple[yaml.Node | None, Any]:
    """(root node, data) of one YAML document; (None, None) for an empty one."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        raise _problem(exc) from exc
    except yaml.YAMLError as exc:  # e.g. a character YAML does not allow
        raise YamlProblem(line=0, problem=str(exc).splitlines()[0]) from exc
    return node, data


def yaml_key_nodes(node: yaml.MappingNode) -> list[tuple[yaml.Node, yaml.Node]]:
    return list(node.value)


def yaml_value_node(node: yaml.MappingNode, key: str) -> yaml.Node | None:
    """The value node under a plain string key, or None."""
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return value_node
    return None


def _problem(exc: yaml.MarkedYAMLError) -> YamlProblem:
    mark = exc.problem_mark or exc.context_mark
    line = mark.line if mark is not None else 0
    problem = exc.problem or str(exc).splitlines()[0]
    context = exc.context_mark
    if exc.context and context is not None and context.line != line:
        return YamlProblem(
            line=line, problem=problem, context=exc.context, context_line=context.line
        )
    return YamlProblem(line=line, problem=problem)
