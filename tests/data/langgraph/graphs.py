"""Real LangGraph graphs for the importer's tests: no model calls (fake chat models from langchain-core).

Each graph is a module-level attribute, so `hetc import langgraph graphs:NAME` finds it the way a user's
would be found.
"""

from __future__ import annotations

import itertools
import operator
import warnings
from typing import Annotated, Literal, TypedDict

from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent, tools_condition
from langgraph.types import Send


class FakeChat(FakeMessagesListChatModel):
    """A chat model that answers from a list and names the model it stands for, as provider classes do."""

    model_name: str = "meta-llama/Meta-Llama-3-70B-Instruct"

    def bind_tools(self, tools, **kwargs):
        return self


def chat(model_name: str) -> FakeChat:
    return FakeChat(responses=[AIMessage("done")], model_name=model_name)


@tool
def web_search(query: str) -> str:
    """Search the web."""
    return "results"


@tool
def calculator(expression: str) -> str:
    """Evaluate arithmetic."""
    return "42"


@tool
def python_sandbox(code: str) -> str:
    """Run Python code."""
    return "ok"


class Docs(BaseRetriever):
    def _get_relevant_documents(self, query, *, run_manager=None):
        return [Document("doc")]


def react_agent(model, tools, **kwargs):
    """LangGraph's prebuilt ReAct agent (LangGraph 1.x points to langchain.agents.create_agent instead, with a
    deprecation warning; the prebuilt one is what the importer must read)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return create_react_agent(model, tools, **kwargs)


# --- a ReAct agent from LangGraph's prebuilt constructor ---
react = react_agent(chat("meta-llama/Meta-Llama-3-70B-Instruct"), [web_search, calculator])

# --- a supervisor with two sub-agents (each a prebuilt ReAct agent) ---
researcher = react_agent(chat("llama3:8b"), [web_search], name="researcher")
analyst = react_agent(chat("gpt-4o-mini"), [python_sandbox, calculator], name="analyst")
supervisor_model = chat("meta-llama/Meta-Llama-3-70B-Instruct")


def supervisor_node(state: MessagesState):
    return {"messages": [supervisor_model.invoke(state["messages"])]}


def route(state: MessagesState) -> Literal["researcher", "analyst", "__end__"]:
    return END


_sup = StateGraph(MessagesState)
_sup.add_node("supervisor", supervisor_node)
_sup.add_node("researcher", researcher)
_sup.add_node("analyst", analyst)
_sup.add_edge(START, "supervisor")
_sup.add_conditional_edges("supervisor", route, ["researcher", "analyst", END])
_sup.add_edge("researcher", "supervisor")
_sup.add_edge("analyst", "supervisor")
supervisor = _sup.compile()


# --- plan-and-execute with a retry loop; its recursion limit is configured ---
class PlanState(TypedDict):
    task: str
    plan: list[str]
    results: Annotated[list[str], operator.add]
    ok: bool


planner_llm = chat("meta-llama/Llama-3.1-8B-Instruct")
executor_llm = chat("meta-llama/Llama-3.1-8B-Instruct")
docs = Docs()


def retrieve(state: PlanState):
    return {"results": [d.page_content for d in docs.invoke(state["task"])]}


def plan(state: PlanState):
    return {"plan": [planner_llm.invoke(state["task"]).content]}


def execute(state: PlanState):
    return {"results": [executor_llm.invoke(state["plan"][0]).content]}


def check(state: PlanState):
    return {"ok": True}


def retry_or_finish(state: PlanState) -> Literal["plan", "__end__"]:
    return END if state["ok"] else "plan"


_pe = StateGraph(PlanState)
_pe.add_node("retrieve", retrieve)
_pe.add_node("plan", plan)
_pe.add_node("execute", execute)
_pe.add_node("check", check)
_pe.add_edge(START, "retrieve")
_pe.add_edge("retrieve", "plan")
_pe.add_edge("plan", "execute")
_pe.add_edge("execute", "check")
_pe.add_conditional_edges("check", retry_or_finish, ["plan", END])
plan_execute = _pe.compile().with_config(recursion_limit=30)
plan_execute_builder = _pe


# --- map-reduce with Send ---
class JokeState(TypedDict):
    topic: str
    subjects: list[str]
    jokes: Annotated[list[str], operator.add]
    best: str


joke_llm = chat("mixtral-8x7b-instruct-v0.1")


def generate_topics(state: JokeState):
    return {"subjects": ["cats", "dogs", "birds"]}


def generate_joke(state: dict):
    return {"jokes": [joke_llm.invoke(state["subject"]).content]}


def fan_out(state: JokeState):
    return [Send("generate_joke", {"subject": s}) for s in state["subjects"]]


def best_joke(state: JokeState):
    return {"best": state["jokes"][0]}


_mr = StateGraph(JokeState)
_mr.add_node("generate_topics", generate_topics)
_mr.add_node("generate_joke", generate_joke)
_mr.add_node("best_joke", best_joke)
_mr.add_edge(START, "generate_topics")
_mr.add_conditional_edges("generate_topics", fan_out, ["generate_joke"])
_mr.add_edge("generate_joke", "best_joke")
_mr.add_edge("best_joke", END)
map_reduce = _mr.compile()


# --- a graph with a subgraph (a tool-calling loop inside a node) ---
inner_llm = chat("llama-3-8b")
_inner = StateGraph(MessagesState)
_inner.add_node("think", lambda state: {"messages": [inner_llm.invoke(state["messages"])]})
_inner.add_node("act", ToolNode([web_search]))
_inner.add_edge(START, "think")
_inner.add_conditional_edges("think", tools_condition, {"tools": "act", END: END})
_inner.add_edge("act", "think")
inner = _inner.compile()


def prepare(state: MessagesState):
    return {}


def summarise(state: MessagesState):
    return {"messages": [inner_llm.invoke(state["messages"])]}


_outer = StateGraph(MessagesState)
_outer.add_node("prepare", prepare)
_outer.add_node("research", inner)
_outer.add_node("summarise", summarise)
_outer.add_edge(START, "prepare")
_outer.add_edge("prepare", "research")
_outer.add_edge("research", "summarise")
_outer.add_edge("summarise", END)
with_subgraph = _outer.compile()


# --- hostile node names: YAML syntax, control characters, an edge arrow, a very long name ---
_hostile = StateGraph(MessagesState)
HOSTILE_NAMES = ["a= b\n- c", "x -> y #z", "'\"{}[]&*!>%@`", "\x1b[31mred\x07", "true", "ünïcode ✓", "n" * 300]
for _name in HOSTILE_NAMES:
    _hostile.add_node(_name, prepare)
_hostile.add_edge(START, HOSTILE_NAMES[0])
for _a, _b in itertools.pairwise(HOSTILE_NAMES):
    _hostile.add_edge(_a, _b)
HOSTILE_TOOLS = ["a:b, {c}", "x]\ny #z"]
_hostile.add_node("tools", ToolNode([tool(name, description="echo")(lambda q: q) for name in HOSTILE_TOOLS]))
_hostile.add_edge(HOSTILE_NAMES[-1], "tools")
_hostile.add_edge("tools", END)
hostile = _hostile.compile()


# --- unsupported: a node routes with Command(goto=...) but does not declare where ---
def jump(state: MessagesState):
    from langgraph.types import Command

    return Command(goto="orphan")


_cmd = StateGraph(MessagesState)
_cmd.add_node("jump", jump)
_cmd.add_node("orphan", prepare)
_cmd.add_edge(START, "jump")
_cmd.add_edge("orphan", END)
undeclared_command = _cmd.compile()

not_a_graph = {"nodes": []}


# --- unsupported: a node runs a graph served elsewhere (constructed only; nothing is contacted) ---
def remote_graph():
    from langgraph.pregel.remote import RemoteGraph

    builder = StateGraph(MessagesState)
    builder.add_node("prepare", prepare)
    builder.add_node("remote_agent", RemoteGraph("agent", url="http://127.0.0.1:9"))
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "remote_agent")
    builder.add_edge("remote_agent", END)
    return builder.compile()


with_remote_graph = remote_graph()
