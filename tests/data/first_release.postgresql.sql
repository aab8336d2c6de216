--
-- PostgreSQL database dump
--


-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: pg_trgm; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;


--
-- Name: EXTENSION pg_trgm; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION pg_trgm IS 'text similarity measurement and index searching based on trigrams';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: agent; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent (
    id integer NOT NULL,
    team_id integer NOT NULL,
    email character varying(254) NOT NULL,
    name character varying(80) NOT NULL,
    nickname character varying(80) NOT NULL,
    password_hash character varying(255) NOT NULL,
    role character varying(16) NOT NULL,
    scope character varying(16) NOT NULL,
    max_concurrent integer NOT NULL,
    status character varying(16) NOT NULL,
    active boolean NOT NULL,
    preferences text NOT NULL,
    failed_logins integer NOT NULL,
    locked_until timestamp without time zone,
    last_assigned_at timestamp without time zone,
    last_seen_at timestamp without time zone,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: agent_group; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.agent_group (
    id integer NOT NULL,
    agent_id integer NOT NULL,
    group_id integer NOT NULL
);


--
-- Name: agent_group_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.agent_group_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: agent_group_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.agent_group_id_seq OWNED BY public.agent_group.id;


--
-- Name: agent_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.agent_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: agent_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.agent_id_seq OWNED BY public.agent.id;


--
-- Name: api_token; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_token (
    id integer NOT NULL,
    agent_id integer NOT NULL,
    name character varying(80) NOT NULL,
    token_hash character varying(64) NOT NULL,
    prefix character varying(16) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    last_used_at timestamp without time zone,
    revoked_at timestamp without time zone
);


--
-- Name: api_token_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.api_token_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: api_token_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.api_token_id_seq OWNED BY public.api_token.id;


--
-- Name: attachment; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.attachment (
    id integer NOT NULL,
    team_id integer NOT NULL,
    conversation_id integer,
    key character varying(40) NOT NULL,
    original_name character varying(255) NOT NULL,
    content_type character varying(120) NOT NULL,
    size bigint NOT NULL,
    is_image boolean NOT NULL,
    uploader_kind character varying(8) NOT NULL,
    uploader_id integer NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: attachment_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.attachment_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: attachment_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.attachment_id_seq OWNED BY public.attachment.id;


--
-- Name: audit_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audit_log (
    id integer NOT NULL,
    team_id integer,
    actor_id integer,
    action character varying(64) NOT NULL,
    target_type character varying(32) NOT NULL,
    target_id character varying(64) NOT NULL,
    details text NOT NULL,
    ip character varying(45) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.audit_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.audit_log_id_seq OWNED BY public.audit_log.id;


--
-- Name: conversation; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.conversation (
    id integer NOT NULL,
    team_id integer NOT NULL,
    visitor_id integer NOT NULL,
    visit_id integer,
    channel character varying(32) NOT NULL,
    status character varying(16) NOT NULL,
    handler_id integer,
    group_id integer,
    created_at timestamp without time zone NOT NULL,
    queued_at timestamp without time zone,
    assigned_at timestamp without time zone,
    ended_at timestamp without time zone,
    ended_by_id integer,
    end_reason character varying(16) NOT NULL,
    rating character varying(8),
    rating_comment text NOT NULL,
    summary text NOT NULL,
    tags text NOT NULL,
    bot_failures integer NOT NULL,
    last_message_id bigint NOT NULL,
    last_message_at timestamp without time zone,
    agent_read_id bigint NOT NULL,
    visitor_read_id bigint NOT NULL,
    visitor_message_count integer NOT NULL,
    agent_message_count integer NOT NULL,
    bot_message_count integer NOT NULL,
    is_lead boolean NOT NULL,
    lead_details text NOT NULL,
    is_invalid boolean NOT NULL,
    is_missed boolean NOT NULL,
    bot_resolved boolean NOT NULL,
    first_manual_at timestamp without time zone,
    last_manual_at timestamp without time zone,
    duration_s integer,
    first_response_s integer,
    grade character varying(16) NOT NULL
);


--
-- Name: conversation_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.conversation_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: conversation_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.conversation_id_seq OWNED BY public.conversation.id;


--
-- Name: conversation_rule; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.conversation_rule (
    id integer NOT NULL,
    team_id integer NOT NULL,
    grades text NOT NULL,
    inactivity_minutes integer NOT NULL,
    updated_at timestamp without time zone NOT NULL
);


--
-- Name: conversation_rule_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.conversation_rule_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: conversation_rule_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.conversation_rule_id_seq OWNED BY public.conversation_rule.id;


--
-- Name: export_job; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.export_job (
    id integer NOT NULL,
    team_id integer NOT NULL,
    requested_by_id integer NOT NULL,
    filters text NOT NULL,
    with_content boolean NOT NULL,
    format character varying(8) NOT NULL,
    status character varying(16) NOT NULL,
    total integer NOT NULL,
    done integer NOT NULL,
    file_name character varying(200) NOT NULL,
    size bigint NOT NULL,
    error text NOT NULL,
    job_id character varying(64) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    finished_at timestamp without time zone
);


--
-- Name: export_job_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.export_job_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: export_job_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.export_job_id_seq OWNED BY public.export_job.id;


--
-- Name: group; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public."group" (
    id integer NOT NULL,
    team_id integer NOT NULL,
    name character varying(80) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: group_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.group_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: group_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.group_id_seq OWNED BY public."group".id;


--
-- Name: iframe_plugin; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.iframe_plugin (
    id integer NOT NULL,
    team_id integer NOT NULL,
    name character varying(80) NOT NULL,
    url character varying(500) NOT NULL,
    secret character varying(80) NOT NULL,
    height integer NOT NULL,
    "position" integer NOT NULL,
    enabled boolean NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: iframe_plugin_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.iframe_plugin_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: iframe_plugin_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.iframe_plugin_id_seq OWNED BY public.iframe_plugin.id;


--
-- Name: job_record; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.job_record (
    id character varying(64) NOT NULL,
    name character varying(200) NOT NULL,
    team_id integer,
    requested_by integer,
    status character varying(16) NOT NULL,
    progress real NOT NULL,
    message text NOT NULL,
    result text,
    error text NOT NULL,
    attempts integer NOT NULL,
    max_attempts integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    started_at timestamp without time zone,
    finished_at timestamp without time zone
);


--
-- Name: knowledge_entry; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.knowledge_entry (
    id integer NOT NULL,
    team_id integer NOT NULL,
    key character varying(80) NOT NULL,
    questions text NOT NULL,
    answer text NOT NULL,
    category character varying(80) NOT NULL,
    tags text NOT NULL,
    enabled boolean NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);


--
-- Name: knowledge_entry_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.knowledge_entry_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: knowledge_entry_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.knowledge_entry_id_seq OWNED BY public.knowledge_entry.id;


--
-- Name: mention; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.mention (
    id integer NOT NULL,
    conversation_id integer NOT NULL,
    message_id bigint NOT NULL,
    agent_id integer NOT NULL,
    by_agent_id integer NOT NULL,
    created_at timestamp without time zone NOT NULL,
    seen_at timestamp without time zone
);


--
-- Name: mention_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.mention_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: mention_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.mention_id_seq OWNED BY public.mention.id;


--
-- Name: message; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.message (
    id bigint NOT NULL,
    conversation_id integer NOT NULL,
    sender_kind character varying(8) NOT NULL,
    shown_agent_id integer,
    agent_id integer,
    visibility character varying(8) NOT NULL,
    kind character varying(16) NOT NULL,
    body text NOT NULL,
    payload text NOT NULL,
    client_msg_id character varying(64),
    created_at timestamp without time zone NOT NULL,
    delivered_at timestamp without time zone,
    read_at timestamp without time zone
);


--
-- Name: message_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.message_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: message_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.message_id_seq OWNED BY public.message.id;


--
-- Name: quick_reply; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.quick_reply (
    id integer NOT NULL,
    team_id integer NOT NULL,
    owner_id integer,
    keyword character varying(40) NOT NULL,
    title character varying(120) NOT NULL,
    body text NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: quick_reply_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.quick_reply_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: quick_reply_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.quick_reply_id_seq OWNED BY public.quick_reply.id;


--
-- Name: schema_migration; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migration (
    name character varying(128) NOT NULL,
    applied_at timestamp without time zone NOT NULL
);


--
-- Name: scope_grant; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.scope_grant (
    id integer NOT NULL,
    agent_id integer NOT NULL,
    target_agent_id integer,
    target_group_id integer
);


--
-- Name: scope_grant_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.scope_grant_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: scope_grant_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.scope_grant_id_seq OWNED BY public.scope_grant.id;


--
-- Name: sink_delivery; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sink_delivery (
    id integer NOT NULL,
    sink_id integer NOT NULL,
    ticket_id integer NOT NULL,
    event character varying(16) NOT NULL,
    changes text NOT NULL,
    status character varying(16) NOT NULL,
    attempts integer NOT NULL,
    last_error text NOT NULL,
    job_id character varying(64) NOT NULL,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);


--
-- Name: sink_delivery_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.sink_delivery_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: sink_delivery_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.sink_delivery_id_seq OWNED BY public.sink_delivery.id;


--
-- Name: suggestion_log; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.suggestion_log (
    id integer NOT NULL,
    team_id integer NOT NULL,
    conversation_id integer NOT NULL,
    message_id bigint NOT NULL,
    entry_key character varying(80) NOT NULL,
    score real NOT NULL,
    agent_id integer,
    outcome character varying(16) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: suggestion_log_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.suggestion_log_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: suggestion_log_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.suggestion_log_id_seq OWNED BY public.suggestion_log.id;


--
-- Name: team; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.team (
    id integer NOT NULL,
    name character varying(120) NOT NULL,
    timezone character varying(64) NOT NULL,
    language character varying(8) NOT NULL,
    settings text NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: team_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.team_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: team_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.team_id_seq OWNED BY public.team.id;


--
-- Name: ticket; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ticket (
    id integer NOT NULL,
    team_id integer NOT NULL,
    visitor_id integer,
    conversation_id integer,
    source character varying(24) NOT NULL,
    status character varying(16) NOT NULL,
    priority character varying(16) NOT NULL,
    assignee_id integer,
    group_id integer,
    tags text NOT NULL,
    contact_name character varying(120) NOT NULL,
    contact_phone character varying(40) NOT NULL,
    contact_email character varying(254) NOT NULL,
    subject character varying(200) NOT NULL,
    content text NOT NULL,
    attachments text NOT NULL,
    created_by_id integer,
    created_at timestamp without time zone NOT NULL,
    updated_at timestamp without time zone NOT NULL
);


--
-- Name: ticket_comment; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ticket_comment (
    id integer NOT NULL,
    ticket_id integer NOT NULL,
    author_id integer,
    author_kind character varying(8) NOT NULL,
    visibility character varying(8) NOT NULL,
    body text NOT NULL,
    delivered_via character varying(16) NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: ticket_comment_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ticket_comment_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ticket_comment_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ticket_comment_id_seq OWNED BY public.ticket_comment.id;


--
-- Name: ticket_event; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ticket_event (
    id integer NOT NULL,
    ticket_id integer NOT NULL,
    actor_id integer,
    actor_kind character varying(8) NOT NULL,
    field character varying(32) NOT NULL,
    old_value text NOT NULL,
    new_value text NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: ticket_event_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ticket_event_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ticket_event_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ticket_event_id_seq OWNED BY public.ticket_event.id;


--
-- Name: ticket_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ticket_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ticket_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ticket_id_seq OWNED BY public.ticket.id;


--
-- Name: ticket_sink; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ticket_sink (
    id integer NOT NULL,
    team_id integer NOT NULL,
    type character varying(40) NOT NULL,
    name character varying(80) NOT NULL,
    config text NOT NULL,
    enabled boolean NOT NULL,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: ticket_sink_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ticket_sink_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ticket_sink_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ticket_sink_id_seq OWNED BY public.ticket_sink.id;


--
-- Name: unrecognised_question; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.unrecognised_question (
    id integer NOT NULL,
    team_id integer NOT NULL,
    conversation_id integer,
    message_id bigint,
    question text NOT NULL,
    resolved_entry_id integer,
    created_at timestamp without time zone NOT NULL
);


--
-- Name: unrecognised_question_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.unrecognised_question_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: unrecognised_question_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.unrecognised_question_id_seq OWNED BY public.unrecognised_question.id;


--
-- Name: visit; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.visit (
    id integer NOT NULL,
    visitor_id integer NOT NULL,
    team_id integer NOT NULL,
    ip character varying(45) NOT NULL,
    region character varying(120) NOT NULL,
    country character varying(80) NOT NULL,
    province character varying(80) NOT NULL,
    city character varying(80) NOT NULL,
    user_agent text NOT NULL,
    device character varying(80) NOT NULL,
    os character varying(80) NOT NULL,
    browser character varying(80) NOT NULL,
    platform character varying(16) NOT NULL,
    landing_page text NOT NULL,
    referrer text NOT NULL,
    source character varying(16) NOT NULL,
    search_engine character varying(40) NOT NULL,
    search_keyword character varying(255) NOT NULL,
    trail text NOT NULL,
    custom_info text NOT NULL,
    started_at timestamp without time zone NOT NULL
);


--
-- Name: visit_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.visit_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: visit_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.visit_id_seq OWNED BY public.visit.id;


--
-- Name: visitor; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.visitor (
    id integer NOT NULL,
    team_id integer NOT NULL,
    uid character varying(40) NOT NULL,
    name character varying(120) NOT NULL,
    phone character varying(40) NOT NULL,
    email character varying(254) NOT NULL,
    company character varying(120) NOT NULL,
    address character varying(255) NOT NULL,
    note text NOT NULL,
    tags text NOT NULL,
    attributes text NOT NULL,
    online_until timestamp without time zone,
    created_at timestamp without time zone NOT NULL,
    last_seen_at timestamp without time zone NOT NULL
);


--
-- Name: visitor_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.visitor_id_seq
    AS integer
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: visitor_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.visitor_id_seq OWNED BY public.visitor.id;


--
-- Name: agent id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent ALTER COLUMN id SET DEFAULT nextval('public.agent_id_seq'::regclass);


--
-- Name: agent_group id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_group ALTER COLUMN id SET DEFAULT nextval('public.agent_group_id_seq'::regclass);


--
-- Name: api_token id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_token ALTER COLUMN id SET DEFAULT nextval('public.api_token_id_seq'::regclass);


--
-- Name: attachment id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.attachment ALTER COLUMN id SET DEFAULT nextval('public.attachment_id_seq'::regclass);


--
-- Name: audit_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log ALTER COLUMN id SET DEFAULT nextval('public.audit_log_id_seq'::regclass);


--
-- Name: conversation id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation ALTER COLUMN id SET DEFAULT nextval('public.conversation_id_seq'::regclass);


--
-- Name: conversation_rule id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation_rule ALTER COLUMN id SET DEFAULT nextval('public.conversation_rule_id_seq'::regclass);


--
-- Name: export_job id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.export_job ALTER COLUMN id SET DEFAULT nextval('public.export_job_id_seq'::regclass);


--
-- Name: group id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."group" ALTER COLUMN id SET DEFAULT nextval('public.group_id_seq'::regclass);


--
-- Name: iframe_plugin id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.iframe_plugin ALTER COLUMN id SET DEFAULT nextval('public.iframe_plugin_id_seq'::regclass);


--
-- Name: knowledge_entry id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.knowledge_entry ALTER COLUMN id SET DEFAULT nextval('public.knowledge_entry_id_seq'::regclass);


--
-- Name: mention id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mention ALTER COLUMN id SET DEFAULT nextval('public.mention_id_seq'::regclass);


--
-- Name: message id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message ALTER COLUMN id SET DEFAULT nextval('public.message_id_seq'::regclass);


--
-- Name: quick_reply id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.quick_reply ALTER COLUMN id SET DEFAULT nextval('public.quick_reply_id_seq'::regclass);


--
-- Name: scope_grant id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scope_grant ALTER COLUMN id SET DEFAULT nextval('public.scope_grant_id_seq'::regclass);


--
-- Name: sink_delivery id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sink_delivery ALTER COLUMN id SET DEFAULT nextval('public.sink_delivery_id_seq'::regclass);


--
-- Name: suggestion_log id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.suggestion_log ALTER COLUMN id SET DEFAULT nextval('public.suggestion_log_id_seq'::regclass);


--
-- Name: team id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.team ALTER COLUMN id SET DEFAULT nextval('public.team_id_seq'::regclass);


--
-- Name: ticket id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket ALTER COLUMN id SET DEFAULT nextval('public.ticket_id_seq'::regclass);


--
-- Name: ticket_comment id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_comment ALTER COLUMN id SET DEFAULT nextval('public.ticket_comment_id_seq'::regclass);


--
-- Name: ticket_event id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_event ALTER COLUMN id SET DEFAULT nextval('public.ticket_event_id_seq'::regclass);


--
-- Name: ticket_sink id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_sink ALTER COLUMN id SET DEFAULT nextval('public.ticket_sink_id_seq'::regclass);


--
-- Name: unrecognised_question id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.unrecognised_question ALTER COLUMN id SET DEFAULT nextval('public.unrecognised_question_id_seq'::regclass);


--
-- Name: visit id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visit ALTER COLUMN id SET DEFAULT nextval('public.visit_id_seq'::regclass);


--
-- Name: visitor id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visitor ALTER COLUMN id SET DEFAULT nextval('public.visitor_id_seq'::regclass);


--
-- Data for Name: agent; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.agent VALUES (1, 1, 'admin@example.com', '管理员', '', 'scrypt:32768:8:1$niQL5tFv7Hwwk7RS$c629193b4e1dcfe3894c2e3db400b69cd0b657b93f0f61e7065ddb7c01bffa9756b55cff9bca6a6db85348df696ef5f710f62d229867aa82e34d65e22385525d', 'admin', 'all', 5, 'online', true, '{}', 0, NULL, NULL, NULL, '2026-12-03 06:31:56.458742');
INSERT INTO public.agent VALUES (2, 1, 'li@example.com', '小李', '', 'scrypt:32768:8:1$IFik5R4B2sOjiBro$a38bfb4654f657c670308f36f1e14afb1d0f42a3a5a8c93c30d8749eb0269584f9e5536449c7e5936a521e2b9b87641ffc10a2981d44748051ea79ba6a90f14d', 'agent', 'self', 5, 'offline', true, '{}', 0, NULL, NULL, NULL, '2026-12-03 06:31:56.587502');


--
-- Data for Name: agent_group; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: api_token; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: attachment; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.audit_log VALUES (1, 1, 1, 'team.register', 'team', '1', '{}', '', '2026-12-03 06:31:56.460301');
INSERT INTO public.audit_log VALUES (2, 1, 1, 'team.update', 'team', '1', '{"settings":{"bot_enabled":false}}', '', '2026-12-03 06:31:56.477935');
INSERT INTO public.audit_log VALUES (3, 1, 1, 'agent.update', 'agent', '1', '{"max_concurrent":5,"status":"online"}', '', '2026-12-03 06:31:56.487108');
INSERT INTO public.audit_log VALUES (4, 1, 1, 'agent.create', 'agent', '2', '{"email":"li@example.com"}', '', '2026-12-03 06:31:56.588429');


--
-- Data for Name: conversation; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.conversation VALUES (1, 1, 1, 1, 'web', 'ended', 1, NULL, '2026-12-03 06:31:56.60745', NULL, NULL, '2026-11-20 08:05:00', NULL, '', NULL, '', '', '[]', 0, 0, NULL, 0, 0, 0, 0, 0, false, '', false, false, false, NULL, NULL, NULL, NULL, '');


--
-- Data for Name: conversation_rule; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.conversation_rule VALUES (1, 1, '[{"grade":"A","min_messages":20},{"grade":"B","min_messages":10},{"grade":"C","min_messages":3},{"grade":"D","min_messages":0}]', 0, '2026-12-03 06:31:56.302724');


--
-- Data for Name: export_job; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: group; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: iframe_plugin; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: job_record; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: knowledge_entry; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.knowledge_entry VALUES (1, 1, 'ship-time', '["多久发货？","什么时候发货"]', '下单后 48 小时内发货。', '', '[]', true, '2026-12-03 06:31:56.619286', '2026-12-03 06:31:56.619292');


--
-- Data for Name: mention; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: message; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.message VALUES (1, 1, 'visitor', NULL, NULL, 'public', 'text', '你好，我想退款', '{}', 'old0', '2026-11-20 08:00:00', NULL, NULL);
INSERT INTO public.message VALUES (2, 1, 'agent', 1, 1, 'public', 'text', '好的，马上为您处理退款', '{}', 'old1', '2026-11-20 08:01:00', NULL, NULL);
INSERT INTO public.message VALUES (3, 1, 'visitor', NULL, NULL, 'public', 'text', '订单号 20261203001，电话 131-2113-2323', '{}', 'old2', '2026-11-20 08:02:00', NULL, NULL);


--
-- Data for Name: quick_reply; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.quick_reply VALUES (1, 1, NULL, '退款', '', '退款会在 3 个工作日内原路退回。', '2026-12-03 06:31:56.615526');


--
-- Data for Name: schema_migration; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.schema_migration VALUES ('m0001_initial', '2026-12-03 06:31:56.264458');
INSERT INTO public.schema_migration VALUES ('m0002_message_search', '2026-12-03 06:31:56.270666');
INSERT INTO public.schema_migration VALUES ('m0003_sink_delivery_changes', '2026-12-03 06:31:56.271112');


--
-- Data for Name: scope_grant; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: sink_delivery; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: suggestion_log; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: team; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.team VALUES (1, '老版本团队', 'Asia/Shanghai', 'zh-CN', '{"bot_enabled":false}', '2026-12-03 06:31:56.296752');


--
-- Data for Name: ticket; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ticket VALUES (1, 1, 1, 1, 'no_agent', 'open', 'normal', NULL, NULL, '[]', '张三', '13121132323', '', '', '周末能发货吗？', '[]', NULL, '2026-12-03 06:31:56.62262', '2026-12-03 06:31:56.622625');


--
-- Data for Name: ticket_comment; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.ticket_comment VALUES (1, 1, NULL, 'agent', 'internal', '已回复客户', '', '2026-12-03 06:31:56.624161');


--
-- Data for Name: ticket_event; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: ticket_sink; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: unrecognised_question; Type: TABLE DATA; Schema: public; Owner: -
--



--
-- Data for Name: visit; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.visit VALUES (1, 1, 1, '114.114.114.114', '', '', '', '', '', '', '', '', 'pc_web', 'https://shop.example.com/退款', '', 'direct', '', '', '[]', '{}', '2026-12-03 06:31:56.606279');


--
-- Data for Name: visitor; Type: TABLE DATA; Schema: public; Owner: -
--

INSERT INTO public.visitor VALUES (1, 1, 'old-visitor-1', '张三', '', '', '', '', '', '[]', '{}', NULL, '2026-12-03 06:31:56.604618', '2026-12-03 06:31:56.604622');


--
-- Name: agent_group_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.agent_group_id_seq', 1, false);


--
-- Name: agent_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.agent_id_seq', 2, true);


--
-- Name: api_token_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.api_token_id_seq', 1, false);


--
-- Name: attachment_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.attachment_id_seq', 1, false);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.audit_log_id_seq', 4, true);


--
-- Name: conversation_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.conversation_id_seq', 1, true);


--
-- Name: conversation_rule_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.conversation_rule_id_seq', 1, true);


--
-- Name: export_job_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.export_job_id_seq', 1, false);


--
-- Name: group_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.group_id_seq', 1, false);


--
-- Name: iframe_plugin_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.iframe_plugin_id_seq', 1, false);


--
-- Name: knowledge_entry_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.knowledge_entry_id_seq', 1, true);


--
-- Name: mention_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.mention_id_seq', 1, false);


--
-- Name: message_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.message_id_seq', 3, true);


--
-- Name: quick_reply_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.quick_reply_id_seq', 1, true);


--
-- Name: scope_grant_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.scope_grant_id_seq', 1, false);


--
-- Name: sink_delivery_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.sink_delivery_id_seq', 1, false);


--
-- Name: suggestion_log_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.suggestion_log_id_seq', 1, false);


--
-- Name: team_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.team_id_seq', 1, true);


--
-- Name: ticket_comment_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ticket_comment_id_seq', 1, true);


--
-- Name: ticket_event_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ticket_event_id_seq', 1, false);


--
-- Name: ticket_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ticket_id_seq', 1, true);


--
-- Name: ticket_sink_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.ticket_sink_id_seq', 1, false);


--
-- Name: unrecognised_question_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.unrecognised_question_id_seq', 1, false);


--
-- Name: visit_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.visit_id_seq', 1, true);


--
-- Name: visitor_id_seq; Type: SEQUENCE SET; Schema: public; Owner: -
--

SELECT pg_catalog.setval('public.visitor_id_seq', 1, true);


--
-- Name: agent_group agent_group_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_group
    ADD CONSTRAINT agent_group_pkey PRIMARY KEY (id);


--
-- Name: agent agent_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent
    ADD CONSTRAINT agent_pkey PRIMARY KEY (id);


--
-- Name: api_token api_token_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_token
    ADD CONSTRAINT api_token_pkey PRIMARY KEY (id);


--
-- Name: attachment attachment_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.attachment
    ADD CONSTRAINT attachment_pkey PRIMARY KEY (id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: conversation conversation_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_pkey PRIMARY KEY (id);


--
-- Name: conversation_rule conversation_rule_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation_rule
    ADD CONSTRAINT conversation_rule_pkey PRIMARY KEY (id);


--
-- Name: export_job export_job_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.export_job
    ADD CONSTRAINT export_job_pkey PRIMARY KEY (id);


--
-- Name: group group_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."group"
    ADD CONSTRAINT group_pkey PRIMARY KEY (id);


--
-- Name: iframe_plugin iframe_plugin_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.iframe_plugin
    ADD CONSTRAINT iframe_plugin_pkey PRIMARY KEY (id);


--
-- Name: job_record job_record_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.job_record
    ADD CONSTRAINT job_record_pkey PRIMARY KEY (id);


--
-- Name: knowledge_entry knowledge_entry_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.knowledge_entry
    ADD CONSTRAINT knowledge_entry_pkey PRIMARY KEY (id);


--
-- Name: mention mention_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mention
    ADD CONSTRAINT mention_pkey PRIMARY KEY (id);


--
-- Name: message message_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_pkey PRIMARY KEY (id);


--
-- Name: quick_reply quick_reply_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.quick_reply
    ADD CONSTRAINT quick_reply_pkey PRIMARY KEY (id);


--
-- Name: schema_migration schema_migration_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migration
    ADD CONSTRAINT schema_migration_pkey PRIMARY KEY (name);


--
-- Name: scope_grant scope_grant_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scope_grant
    ADD CONSTRAINT scope_grant_pkey PRIMARY KEY (id);


--
-- Name: sink_delivery sink_delivery_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sink_delivery
    ADD CONSTRAINT sink_delivery_pkey PRIMARY KEY (id);


--
-- Name: suggestion_log suggestion_log_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.suggestion_log
    ADD CONSTRAINT suggestion_log_pkey PRIMARY KEY (id);


--
-- Name: team team_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.team
    ADD CONSTRAINT team_pkey PRIMARY KEY (id);


--
-- Name: ticket_comment ticket_comment_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_comment
    ADD CONSTRAINT ticket_comment_pkey PRIMARY KEY (id);


--
-- Name: ticket_event ticket_event_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_event
    ADD CONSTRAINT ticket_event_pkey PRIMARY KEY (id);


--
-- Name: ticket ticket_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_pkey PRIMARY KEY (id);


--
-- Name: ticket_sink ticket_sink_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_sink
    ADD CONSTRAINT ticket_sink_pkey PRIMARY KEY (id);


--
-- Name: unrecognised_question unrecognised_question_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.unrecognised_question
    ADD CONSTRAINT unrecognised_question_pkey PRIMARY KEY (id);


--
-- Name: visit visit_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visit
    ADD CONSTRAINT visit_pkey PRIMARY KEY (id);


--
-- Name: visitor visitor_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visitor
    ADD CONSTRAINT visitor_pkey PRIMARY KEY (id);


--
-- Name: agent_email; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX agent_email ON public.agent USING btree (email);


--
-- Name: agent_group_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX agent_group_agent_id ON public.agent_group USING btree (agent_id);


--
-- Name: agent_group_agent_id_group_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX agent_group_agent_id_group_id ON public.agent_group USING btree (agent_id, group_id);


--
-- Name: agent_group_group_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX agent_group_group_id ON public.agent_group USING btree (group_id);


--
-- Name: agent_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX agent_team_id ON public.agent USING btree (team_id);


--
-- Name: agent_team_id_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX agent_team_id_status ON public.agent USING btree (team_id, status);


--
-- Name: api_token_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX api_token_agent_id ON public.api_token USING btree (agent_id);


--
-- Name: api_token_token_hash; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX api_token_token_hash ON public.api_token USING btree (token_hash);


--
-- Name: attachment_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX attachment_conversation_id ON public.attachment USING btree (conversation_id);


--
-- Name: attachment_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX attachment_key ON public.attachment USING btree (key);


--
-- Name: attachment_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX attachment_team_id ON public.attachment USING btree (team_id);


--
-- Name: audit_log_actor_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_actor_id ON public.audit_log USING btree (actor_id);


--
-- Name: audit_log_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_team_id ON public.audit_log USING btree (team_id);


--
-- Name: audit_log_team_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audit_log_team_id_created_at ON public.audit_log USING btree (team_id, created_at);


--
-- Name: conversation_ended_by_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_ended_by_id ON public.conversation USING btree (ended_by_id);


--
-- Name: conversation_group_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_group_id ON public.conversation USING btree (group_id);


--
-- Name: conversation_handler_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_handler_id ON public.conversation USING btree (handler_id);


--
-- Name: conversation_handler_id_ended_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_handler_id_ended_at ON public.conversation USING btree (handler_id, ended_at);


--
-- Name: conversation_handler_id_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_handler_id_status ON public.conversation USING btree (handler_id, status);


--
-- Name: conversation_rule_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX conversation_rule_team_id ON public.conversation_rule USING btree (team_id);


--
-- Name: conversation_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_team_id ON public.conversation USING btree (team_id);


--
-- Name: conversation_team_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_team_id_created_at ON public.conversation USING btree (team_id, created_at);


--
-- Name: conversation_team_id_ended_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_team_id_ended_at ON public.conversation USING btree (team_id, ended_at);


--
-- Name: conversation_team_id_status_queued_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_team_id_status_queued_at ON public.conversation USING btree (team_id, status, queued_at);


--
-- Name: conversation_visit_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_visit_id ON public.conversation USING btree (visit_id);


--
-- Name: conversation_visitor_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_visitor_id ON public.conversation USING btree (visitor_id);


--
-- Name: conversation_visitor_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX conversation_visitor_id_created_at ON public.conversation USING btree (visitor_id, created_at);


--
-- Name: export_job_requested_by_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX export_job_requested_by_id ON public.export_job USING btree (requested_by_id);


--
-- Name: export_job_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX export_job_team_id ON public.export_job USING btree (team_id);


--
-- Name: group_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX group_team_id ON public."group" USING btree (team_id);


--
-- Name: group_team_id_name; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX group_team_id_name ON public."group" USING btree (team_id, name);


--
-- Name: iframe_plugin_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX iframe_plugin_team_id ON public.iframe_plugin USING btree (team_id);


--
-- Name: job_record_status_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX job_record_status_created_at ON public.job_record USING btree (status, created_at);


--
-- Name: knowledge_entry_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX knowledge_entry_team_id ON public.knowledge_entry USING btree (team_id);


--
-- Name: knowledge_entry_team_id_key; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX knowledge_entry_team_id_key ON public.knowledge_entry USING btree (team_id, key);


--
-- Name: mention_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX mention_agent_id ON public.mention USING btree (agent_id);


--
-- Name: mention_agent_id_seen_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX mention_agent_id_seen_at ON public.mention USING btree (agent_id, seen_at);


--
-- Name: mention_by_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX mention_by_agent_id ON public.mention USING btree (by_agent_id);


--
-- Name: mention_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX mention_conversation_id ON public.mention USING btree (conversation_id);


--
-- Name: message_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX message_agent_id ON public.message USING btree (agent_id);


--
-- Name: message_body_trgm; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX message_body_trgm ON public.message USING gin (body public.gin_trgm_ops);


--
-- Name: message_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX message_conversation_id ON public.message USING btree (conversation_id);


--
-- Name: message_conversation_id_client_msg_id; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX message_conversation_id_client_msg_id ON public.message USING btree (conversation_id, client_msg_id);


--
-- Name: message_conversation_id_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX message_conversation_id_id ON public.message USING btree (conversation_id, id);


--
-- Name: message_shown_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX message_shown_agent_id ON public.message USING btree (shown_agent_id);


--
-- Name: quick_reply_owner_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX quick_reply_owner_id ON public.quick_reply USING btree (owner_id);


--
-- Name: quick_reply_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX quick_reply_team_id ON public.quick_reply USING btree (team_id);


--
-- Name: quick_reply_team_id_owner_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX quick_reply_team_id_owner_id ON public.quick_reply USING btree (team_id, owner_id);


--
-- Name: scope_grant_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scope_grant_agent_id ON public.scope_grant USING btree (agent_id);


--
-- Name: scope_grant_target_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scope_grant_target_agent_id ON public.scope_grant USING btree (target_agent_id);


--
-- Name: scope_grant_target_group_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scope_grant_target_group_id ON public.scope_grant USING btree (target_group_id);


--
-- Name: sink_delivery_sink_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sink_delivery_sink_id ON public.sink_delivery USING btree (sink_id);


--
-- Name: sink_delivery_status_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sink_delivery_status_created_at ON public.sink_delivery USING btree (status, created_at);


--
-- Name: sink_delivery_ticket_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sink_delivery_ticket_id ON public.sink_delivery USING btree (ticket_id);


--
-- Name: suggestion_log_agent_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX suggestion_log_agent_id ON public.suggestion_log USING btree (agent_id);


--
-- Name: suggestion_log_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX suggestion_log_conversation_id ON public.suggestion_log USING btree (conversation_id);


--
-- Name: suggestion_log_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX suggestion_log_team_id ON public.suggestion_log USING btree (team_id);


--
-- Name: suggestion_log_team_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX suggestion_log_team_id_created_at ON public.suggestion_log USING btree (team_id, created_at);


--
-- Name: suggestion_log_team_id_entry_key; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX suggestion_log_team_id_entry_key ON public.suggestion_log USING btree (team_id, entry_key);


--
-- Name: ticket_assignee_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_assignee_id ON public.ticket USING btree (assignee_id);


--
-- Name: ticket_assignee_id_status; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_assignee_id_status ON public.ticket USING btree (assignee_id, status);


--
-- Name: ticket_comment_author_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_comment_author_id ON public.ticket_comment USING btree (author_id);


--
-- Name: ticket_comment_ticket_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_comment_ticket_id ON public.ticket_comment USING btree (ticket_id);


--
-- Name: ticket_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_conversation_id ON public.ticket USING btree (conversation_id);


--
-- Name: ticket_created_by_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_created_by_id ON public.ticket USING btree (created_by_id);


--
-- Name: ticket_event_actor_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_event_actor_id ON public.ticket_event USING btree (actor_id);


--
-- Name: ticket_event_ticket_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_event_ticket_id ON public.ticket_event USING btree (ticket_id);


--
-- Name: ticket_group_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_group_id ON public.ticket USING btree (group_id);


--
-- Name: ticket_sink_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_sink_team_id ON public.ticket_sink USING btree (team_id);


--
-- Name: ticket_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_team_id ON public.ticket USING btree (team_id);


--
-- Name: ticket_team_id_status_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_team_id_status_created_at ON public.ticket USING btree (team_id, status, created_at);


--
-- Name: ticket_visitor_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_visitor_id ON public.ticket USING btree (visitor_id);


--
-- Name: ticket_visitor_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ticket_visitor_id_created_at ON public.ticket USING btree (visitor_id, created_at);


--
-- Name: unrecognised_question_conversation_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX unrecognised_question_conversation_id ON public.unrecognised_question USING btree (conversation_id);


--
-- Name: unrecognised_question_resolved_entry_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX unrecognised_question_resolved_entry_id ON public.unrecognised_question USING btree (resolved_entry_id);


--
-- Name: unrecognised_question_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX unrecognised_question_team_id ON public.unrecognised_question USING btree (team_id);


--
-- Name: unrecognised_question_team_id_created_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX unrecognised_question_team_id_created_at ON public.unrecognised_question USING btree (team_id, created_at);


--
-- Name: visit_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visit_team_id ON public.visit USING btree (team_id);


--
-- Name: visit_visitor_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visit_visitor_id ON public.visit USING btree (visitor_id);


--
-- Name: visit_visitor_id_started_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visit_visitor_id_started_at ON public.visit USING btree (visitor_id, started_at);


--
-- Name: visitor_team_id; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visitor_team_id ON public.visitor USING btree (team_id);


--
-- Name: visitor_team_id_last_seen_at; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visitor_team_id_last_seen_at ON public.visitor USING btree (team_id, last_seen_at);


--
-- Name: visitor_team_id_phone; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX visitor_team_id_phone ON public.visitor USING btree (team_id, phone);


--
-- Name: visitor_uid; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX visitor_uid ON public.visitor USING btree (uid);


--
-- Name: agent_group agent_group_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_group
    ADD CONSTRAINT agent_group_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: agent_group agent_group_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent_group
    ADD CONSTRAINT agent_group_group_id_fkey FOREIGN KEY (group_id) REFERENCES public."group"(id) ON DELETE CASCADE;


--
-- Name: agent agent_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.agent
    ADD CONSTRAINT agent_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: api_token api_token_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_token
    ADD CONSTRAINT api_token_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: attachment attachment_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.attachment
    ADD CONSTRAINT attachment_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE CASCADE;


--
-- Name: attachment attachment_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.attachment
    ADD CONSTRAINT attachment_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: audit_log audit_log_actor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: audit_log audit_log_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audit_log
    ADD CONSTRAINT audit_log_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: conversation conversation_ended_by_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_ended_by_id_fkey FOREIGN KEY (ended_by_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: conversation conversation_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_group_id_fkey FOREIGN KEY (group_id) REFERENCES public."group"(id) ON DELETE SET NULL;


--
-- Name: conversation conversation_handler_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_handler_id_fkey FOREIGN KEY (handler_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: conversation_rule conversation_rule_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation_rule
    ADD CONSTRAINT conversation_rule_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: conversation conversation_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: conversation conversation_visit_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_visit_id_fkey FOREIGN KEY (visit_id) REFERENCES public.visit(id) ON DELETE SET NULL;


--
-- Name: conversation conversation_visitor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.conversation
    ADD CONSTRAINT conversation_visitor_id_fkey FOREIGN KEY (visitor_id) REFERENCES public.visitor(id) ON DELETE CASCADE;


--
-- Name: export_job export_job_requested_by_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.export_job
    ADD CONSTRAINT export_job_requested_by_id_fkey FOREIGN KEY (requested_by_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: export_job export_job_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.export_job
    ADD CONSTRAINT export_job_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: group group_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public."group"
    ADD CONSTRAINT group_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: iframe_plugin iframe_plugin_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.iframe_plugin
    ADD CONSTRAINT iframe_plugin_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: knowledge_entry knowledge_entry_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.knowledge_entry
    ADD CONSTRAINT knowledge_entry_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: mention mention_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mention
    ADD CONSTRAINT mention_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: mention mention_by_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mention
    ADD CONSTRAINT mention_by_agent_id_fkey FOREIGN KEY (by_agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: mention mention_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.mention
    ADD CONSTRAINT mention_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE CASCADE;


--
-- Name: message message_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: message message_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE CASCADE;


--
-- Name: message message_shown_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.message
    ADD CONSTRAINT message_shown_agent_id_fkey FOREIGN KEY (shown_agent_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: quick_reply quick_reply_owner_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.quick_reply
    ADD CONSTRAINT quick_reply_owner_id_fkey FOREIGN KEY (owner_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: quick_reply quick_reply_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.quick_reply
    ADD CONSTRAINT quick_reply_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: scope_grant scope_grant_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scope_grant
    ADD CONSTRAINT scope_grant_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: scope_grant scope_grant_target_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scope_grant
    ADD CONSTRAINT scope_grant_target_agent_id_fkey FOREIGN KEY (target_agent_id) REFERENCES public.agent(id) ON DELETE CASCADE;


--
-- Name: scope_grant scope_grant_target_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scope_grant
    ADD CONSTRAINT scope_grant_target_group_id_fkey FOREIGN KEY (target_group_id) REFERENCES public."group"(id) ON DELETE CASCADE;


--
-- Name: sink_delivery sink_delivery_sink_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sink_delivery
    ADD CONSTRAINT sink_delivery_sink_id_fkey FOREIGN KEY (sink_id) REFERENCES public.ticket_sink(id) ON DELETE CASCADE;


--
-- Name: sink_delivery sink_delivery_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sink_delivery
    ADD CONSTRAINT sink_delivery_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.ticket(id) ON DELETE CASCADE;


--
-- Name: suggestion_log suggestion_log_agent_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.suggestion_log
    ADD CONSTRAINT suggestion_log_agent_id_fkey FOREIGN KEY (agent_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: suggestion_log suggestion_log_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.suggestion_log
    ADD CONSTRAINT suggestion_log_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE CASCADE;


--
-- Name: suggestion_log suggestion_log_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.suggestion_log
    ADD CONSTRAINT suggestion_log_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: ticket ticket_assignee_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_assignee_id_fkey FOREIGN KEY (assignee_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: ticket_comment ticket_comment_author_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_comment
    ADD CONSTRAINT ticket_comment_author_id_fkey FOREIGN KEY (author_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: ticket_comment ticket_comment_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_comment
    ADD CONSTRAINT ticket_comment_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.ticket(id) ON DELETE CASCADE;


--
-- Name: ticket ticket_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE SET NULL;


--
-- Name: ticket ticket_created_by_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_created_by_id_fkey FOREIGN KEY (created_by_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: ticket_event ticket_event_actor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_event
    ADD CONSTRAINT ticket_event_actor_id_fkey FOREIGN KEY (actor_id) REFERENCES public.agent(id) ON DELETE SET NULL;


--
-- Name: ticket_event ticket_event_ticket_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_event
    ADD CONSTRAINT ticket_event_ticket_id_fkey FOREIGN KEY (ticket_id) REFERENCES public.ticket(id) ON DELETE CASCADE;


--
-- Name: ticket ticket_group_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_group_id_fkey FOREIGN KEY (group_id) REFERENCES public."group"(id) ON DELETE SET NULL;


--
-- Name: ticket_sink ticket_sink_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket_sink
    ADD CONSTRAINT ticket_sink_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: ticket ticket_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: ticket ticket_visitor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ticket
    ADD CONSTRAINT ticket_visitor_id_fkey FOREIGN KEY (visitor_id) REFERENCES public.visitor(id) ON DELETE SET NULL;


--
-- Name: unrecognised_question unrecognised_question_conversation_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.unrecognised_question
    ADD CONSTRAINT unrecognised_question_conversation_id_fkey FOREIGN KEY (conversation_id) REFERENCES public.conversation(id) ON DELETE SET NULL;


--
-- Name: unrecognised_question unrecognised_question_resolved_entry_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.unrecognised_question
    ADD CONSTRAINT unrecognised_question_resolved_entry_id_fkey FOREIGN KEY (resolved_entry_id) REFERENCES public.knowledge_entry(id) ON DELETE SET NULL;


--
-- Name: unrecognised_question unrecognised_question_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.unrecognised_question
    ADD CONSTRAINT unrecognised_question_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: visit visit_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visit
    ADD CONSTRAINT visit_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- Name: visit visit_visitor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visit
    ADD CONSTRAINT visit_visitor_id_fkey FOREIGN KEY (visitor_id) REFERENCES public.visitor(id) ON DELETE CASCADE;


--
-- Name: visitor visitor_team_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.visitor
    ADD CONSTRAINT visitor_team_id_fkey FOREIGN KEY (team_id) REFERENCES public.team(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--


