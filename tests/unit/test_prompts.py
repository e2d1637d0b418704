from server.search.prompts import Conversation, PromptBuilder
from server.search.schema import LLAVA_COT
from tests.unit.fake_engine import render_chat_fake

CONV = Conversation(({"role": "user", "content": [
    {"type": "image"}, {"type": "text", "text": "How many red shapes?"}]},), ("IMG",))


def test_question_is_the_last_user_turns_text():
    assert CONV.question == "How many red shapes?"


def test_native_mode_adds_no_system_message_and_prompted_mode_does():
    native = PromptBuilder(render_chat_fake, LLAVA_COT).base(CONV)
    prompted = PromptBuilder(render_chat_fake, LLAVA_COT, prompted=True).base(CONV)
    assert not native.startswith("system:")
    assert prompted.startswith("system: Answer in four stages")
    assert prompted.endswith(native)


def test_stage_prompt_opens_the_stage_after_the_chosen_ones():
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    base = builder.base(CONV)
    summary, caption = LLAVA_COT.stages[:2]
    prompt = builder.stage(base, [(summary, "plan")], caption)
    assert prompt == base + "<SUMMARY>plan</SUMMARY>\n\n<CAPTION>"


def test_judge_prompt_shows_image_question_context_and_both_candidates_in_order():
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    summary = LLAVA_COT.stages[0]
    prompt = builder.judge(CONV, [(summary, "plan")], "the CAPTION stage", "Which is better?",
                           "first text", "second text")
    assert prompt.count("<image>") == 1
    assert "How many red shapes?" in prompt and "<SUMMARY>plan</SUMMARY>" in prompt
    assert prompt.index("Response 1:\nfirst text") < prompt.index("Response 2:\nsecond text")
    # the shared part (image, question, context) comes before the candidates
    assert prompt.index("<SUMMARY>plan") < prompt.index("Response 1")
