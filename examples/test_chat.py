"""A multi-turn chat: the prompt is the conversation so far, as a list of chat messages.

The judge writes its rubric for the assistant's next reply to the last user message, given
the whole history: the user said two turns earlier that they cook for four, so a reply
that scales the quantities for four people must beat one that gives a single serving.
Messages are in the OpenAI format (`role` and `content`); `split_conversation` cuts a
logged conversation into this prompt and the reply to judge.
"""

from __future__ import annotations

from pytest_rubric_judge import Judge, assert_preferred

CONVERSATION = [
    {"role": "system", "content": "You are a cooking assistant. Answer briefly."},
    {"role": "user", "content": "I am making mushroom risotto for four people tonight."},
    {"role": "assistant", "content": "Lovely! Do you have Arborio or Carnaroli rice?"},
    {"role": "user", "content": "Arborio. How much rice and stock do I need?"},
]

# In your suite: the reply of your chat model to CONVERSATION.
REPLY = (
    "For four people, use 320 g of Arborio rice (80 g each) and about 1.2 litres of hot "
    "stock, added a ladle at a time."
)
# Right for one person: it forgot what the user said two turns earlier.
ONE_SERVING = "Use 80 g of rice and 300 ml of stock."


def test_reply_remembers_the_conversation(judge: Judge) -> None:
    assert_preferred(REPLY, ONE_SERVING, prompt=CONVERSATION, judge=judge)
