"""Prompted mode's format instruction and a caller's own system message: one system message,
the instruction first, so templates that take a single system message (Gemma 3's) keep both."""

from server.search.prompts import Conversation, PromptBuilder, with_instruction
from server.search.schema import LLAVA_COT
from tinycot.architectures.gemma3 import CHAT_TEMPLATE as GEMMA3_TEMPLATE

USER = {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many?"}]}
INSTRUCTION = LLAVA_COT.format_instruction


def test_without_a_system_message_the_instruction_becomes_one():
    assert with_instruction([USER], INSTRUCTION) == [
        {"role": "system", "content": [{"type": "text", "text": INSTRUCTION}]}, USER]


def test_a_callers_system_message_follows_the_instruction_in_the_same_message():
    system = {"role": "system", "content": [{"type": "text", "text": "Be brief."},
                                            {"type": "text", "text": "Use digits."}]}
    merged = with_instruction([system, USER], INSTRUCTION)
    assert merged == [{"role": "system", "content": [
        {"type": "text", "text": f"{INSTRUCTION}\n\nBe brief.\n\nUse digits."}]}, USER]
    as_string = with_instruction([{"role": "system", "content": "Be brief."}, USER], INSTRUCTION)
    assert as_string[0]["content"] == [{"type": "text", "text": f"{INSTRUCTION}\n\nBe brief."}]


def test_gemma3s_template_renders_a_prompted_conversation_with_a_system_message():
    from jinja2 import Environment

    env = Environment()
    env.globals["raise_exception"] = lambda message: (_ for _ in ()).throw(ValueError(message))
    template = env.from_string(GEMMA3_TEMPLATE)

    def render(messages, kwargs):
        return template.render(messages=messages, bos_token="<bos>", add_generation_prompt=True)

    conversation = Conversation(({"role": "system", "content": [
        {"type": "text", "text": "Be brief."}]}, USER))
    base = PromptBuilder(render, LLAVA_COT, prompted=True).base(conversation)
    assert base.startswith(f"<bos><start_of_turn>user\n{INSTRUCTION}\n\nBe brief.\n\n")
    assert base.endswith("<start_of_image>How many?<end_of_turn>\n<start_of_turn>model\n")
