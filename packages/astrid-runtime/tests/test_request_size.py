"""A request's size estimate (what the budget reserves, and what triggers compaction) reuses
the sum of the conversation's previous request. However the history changes between two
requests, the estimate must equal a fresh count of every message."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from astrid_runtime.llm import ChatMessage, ModelRequest, ToolCall

messages = st.builds(
    ChatMessage,
    role=st.sampled_from(["user", "assistant", "tool"]),
    content=st.text(max_size=30),
    tool_calls=st.lists(
        st.builds(
            ToolCall,
            id=st.just("c1"),
            name=st.text(min_size=1, max_size=8),
            arguments=st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
        ),
        max_size=2,
    ).map(tuple),
)
# What happens to a history between two requests: the loop appends, compaction replaces the
# whole list, and nothing stops a caller from editing or dropping a message in place.
edits = st.one_of(
    st.tuples(st.just("append"), messages),
    st.tuples(st.just("replace"), st.lists(messages, min_size=1, max_size=4)),
    st.tuples(st.just("edit"), messages),
    st.tuples(st.just("drop"), st.none()),
)


def fresh_count(request: ModelRequest) -> int:
    chars = len(request.system) + sum(m.size_chars for m in request.messages)
    chars += sum(t.size_chars for t in request.tools)
    return chars // 4 + 8 * (len(request.messages) + 1) + 1


@settings(max_examples=200, deadline=None)
@given(first=messages, steps=st.lists(edits, max_size=25))
def test_the_estimate_always_equals_a_fresh_count(
    first: ChatMessage, steps: list[tuple[str, object]]
) -> None:
    history = [first]
    for kind, value in steps:
        if kind == "append":
            history.append(value)  # type: ignore[arg-type]
        elif kind == "replace":
            history = list(value)  # type: ignore[call-overload]
        elif kind == "edit":
            history[len(history) // 2] = value  # type: ignore[assignment]
        elif len(history) > 1:
            del history[-1]
        request = ModelRequest("m", "system prompt", tuple(history))
        assert request.estimated_input_tokens == fresh_count(request)


def test_two_conversations_interleaved_keep_their_own_sums() -> None:
    one = [ChatMessage("user", "a" * 400)]
    two = [ChatMessage("user", "b" * 4)]
    for round_number in range(20):
        for history in (one, two):
            history.append(ChatMessage("assistant", "x" * round_number))
            request = ModelRequest("m", "", tuple(history))
            assert request.estimated_input_tokens == fresh_count(request)
