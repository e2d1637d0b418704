from server.search.interface import Generation, prompt_text
from server.search.prompts import Conversation, PromptBuilder
from server.search.schema import LLAVA_COT
from server.search.trace import Candidate
from tests.unit.server.search.fake_engine import render_chat_fake

CONV = Conversation(({"role": "user", "content": [
    {"type": "image"}, {"type": "text", "text": "How many red shapes?"}]},), ("IMG",))


def test_verify_prompt_continues_the_candidates_own_transcript_and_names_its_stage():
    caption = LLAVA_COT.stages[1]
    transcript = ("user: <image>How many?\nassistant: <CAPTION>", "a red circle</CAPTION>")
    prompt = PromptBuilder.verify(transcript, caption)
    assert len(prompt) == 1  # neighbouring text parts are merged into one
    assert prompt[0].startswith("".join(transcript))
    assert prompt[0].endswith("[Verify] Is the CAPTION stage above correct? Reply yes or no: ")


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
    plan = Candidate("plan", 1, -1.0, closed=True)
    assert builder.stage(base, [(summary, plan)], caption) == (
        base + "<SUMMARY>plan</SUMMARY>\n\n<CAPTION>",)


def test_chosen_generations_are_reused_as_they_are():
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    summary, caption, reasoning = LLAVA_COT.stages[:3]
    closed = Generation(" plan </SUMMARY>", 3, None, "stop", token_ids=(7, 8, 9))
    unclosed = Generation("looks", 1, None, "length", token_ids=(4,))
    prompt = builder.stage("B", [(summary, Candidate("plan", 3, -1, True, closed)),
                                 (caption, Candidate("looks", 1, -1, False, unclosed))],
                           reasoning)
    assert prompt == ("B<SUMMARY>", closed, "\n\n<CAPTION>", unclosed,
                      "</CAPTION>\n\n<REASONING>")
    assert prompt_text(prompt) == ("B<SUMMARY> plan </SUMMARY>\n\n<CAPTION>looks</CAPTION>"
                                   "\n\n<REASONING>")


def test_judge_prompt_continues_the_transcript_and_shows_both_candidates_in_order():
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    summary, caption = LLAVA_COT.stages[:2]
    stage_prompt = builder.stage(builder.base(CONV), [(summary, Candidate("plan", 1, -1, True))],
                                 caption)
    parts = PromptBuilder.judge(stage_prompt, ("first text</CAPTION>",),
                                "<CAPTION>second text</CAPTION>", "the CAPTION stage",
                                "Which is better?")
    assert len(parts) == 1  # neighbouring text parts are merged
    prompt = prompt_text(parts)
    # image, question, chosen stages and the first candidate: exactly what generation saw
    assert prompt.startswith(prompt_text(stage_prompt) + "first text</CAPTION>")
    assert prompt.count("<image>") == 1 and "How many red shapes?" in prompt
    assert prompt.index("first text") < prompt.index("second text") < prompt.index("Which")
    assert prompt.endswith("2 if the second one is: ")


def test_prompted_verification_asks_an_instruct_model_directly():
    caption = LLAVA_COT.stages[1]
    transcript = ("user: <image>How many?\nassistant: <CAPTION>a red circle</CAPTION>",)
    native, options = PromptBuilder(render_chat_fake, LLAVA_COT).verification(transcript, caption)
    assert options == ("yes", "no") and native == PromptBuilder.verify(transcript, caption)
    prompted, options = PromptBuilder(render_chat_fake, LLAVA_COT, prompted=True).verification(
        transcript, caption)
    assert options == ("Yes", "No")
    assert prompted[0].startswith(transcript[0])
    assert "<CAPTION> section above" in prompted[0] and prompted[0].endswith("Answer: ")


def test_verifying_a_stage_after_the_caption_quotes_the_chosen_caption_after_the_candidate():
    builder = PromptBuilder(render_chat_fake, LLAVA_COT)
    summary, caption, reasoning, conclusion = LLAVA_COT.stages
    chosen = [(summary, Candidate("plan", 1, -1, True)),
              (caption, Candidate("a red circle", 3, -1, True))]
    assert builder.evidence(chosen[:1], caption) is None  # the caption is checked on its own
    assert builder.evidence(chosen, summary) is None
    evidence = builder.evidence(chosen, reasoning)
    assert evidence == (caption, "a red circle")
    assert builder.evidence(chosen, conclusion) == evidence
    transcript = ("...<REASONING>Red: circle = 1.</REASONING>",)
    prompt = PromptBuilder.verify(transcript, reasoning, evidence)[0]
    assert prompt.startswith(transcript[0])  # the candidate's cached transcript comes first
    question = prompt[len(transcript[0]):]
    assert question == ("\n\n[Verify] Again: <CAPTION>a red circle</CAPTION>\n"
                        "Is the REASONING stage above correct? Reply yes or no: ")
    prompted, _ = PromptBuilder(render_chat_fake, LLAVA_COT, prompted=True).verification(
        transcript, reasoning, evidence)
    assert "The <CAPTION> section said: a red circle" in prompted[0]


def test_a_schema_without_an_evidence_stage_quotes_nothing():
    from server.search.schema import THINK_ANSWER

    builder = PromptBuilder(render_chat_fake, THINK_ANSWER)
    think, answer = THINK_ANSWER.stages
    assert builder.evidence([(think, Candidate("hmm", 1, -1, True))], answer) is None
