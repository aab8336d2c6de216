"""Peewee models, one module per aggregate; ``ALL_MODELS`` in creation order."""

from meiqia.models.accounts import Agent
from meiqia.models.accounts import AgentGroup
from meiqia.models.accounts import AgentSession
from meiqia.models.accounts import AgentSocket
from meiqia.models.accounts import ApiToken
from meiqia.models.accounts import Group
from meiqia.models.accounts import ScopeGrant
from meiqia.models.accounts import Team
from meiqia.models.audit import AuditLog
from meiqia.models.base import SchemaMigration
from meiqia.models.channels import ChannelConfig
from meiqia.models.channels import ChannelDelivery
from meiqia.models.channels import ChannelExternalId
from meiqia.models.channels import ChannelState
from meiqia.models.channels import ChannelThread
from meiqia.models.channels import ChannelVisitor
from meiqia.models.conversations import Conversation
from meiqia.models.conversations import Mention
from meiqia.models.exports import ExportJob
from meiqia.models.exports import JobRecord
from meiqia.models.knowledge import KnowledgeChange
from meiqia.models.knowledge import KnowledgeEntry
from meiqia.models.knowledge import SuggestionLog
from meiqia.models.knowledge import UnrecognisedQuestion
from meiqia.models.messages import Attachment
from meiqia.models.messages import Message
from meiqia.models.password_reset import PasswordReset
from meiqia.models.plugins import PluginState
from meiqia.models.settings import ConversationRule
from meiqia.models.settings import IframePlugin
from meiqia.models.settings import QuickReply
from meiqia.models.tickets import SinkDelivery
from meiqia.models.tickets import Ticket
from meiqia.models.tickets import TicketComment
from meiqia.models.tickets import TicketEvent
from meiqia.models.tickets import TicketSink
from meiqia.models.visitors import Visit
from meiqia.models.visitors import Visitor

ALL_MODELS = [
    Team,
    Group,
    Agent,
    AgentGroup,
    AgentSocket,
    ScopeGrant,
    ApiToken,
    AgentSession,
    PasswordReset,
    Visitor,
    Visit,
    Conversation,
    Mention,
    Message,
    Attachment,
    Ticket,
    TicketComment,
    TicketEvent,
    TicketSink,
    SinkDelivery,
    KnowledgeEntry,
    KnowledgeChange,
    UnrecognisedQuestion,
    SuggestionLog,
    ConversationRule,
    QuickReply,
    IframePlugin,
    JobRecord,
    ExportJob,
    AuditLog,
    PluginState,
    ChannelConfig,
    ChannelState,
    ChannelVisitor,
    ChannelThread,
    ChannelExternalId,
    ChannelDelivery,
]

__all__ = [model.__name__ for model in ALL_MODELS] + ["ALL_MODELS", "SchemaMigration"]
