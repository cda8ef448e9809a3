//! The panel's words, in English and Simplified Chinese: one table of key → (en, zh) that the
//! templates read as `t.<key>`, and the choice of language (the `lang` cookie, else the
//! browser's `Accept-Language`). A `{name}`-style placeholder is filled by [`Lang::fill`].

use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// `en` or `zh`: the cookie's and `/lang?to=`'s value.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh",
        }
    }

    /// The `<html lang>` attribute.
    pub fn html_lang(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The other language, which the switch offers.
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// The language's name in itself (the switch's text).
    pub fn endonym(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Lang::Zh)
        } else if s.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The cookie wins; else the first of the browser's languages (by q) that we speak.
    pub fn negotiate(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        if let Some(lang) = cookie.and_then(Lang::parse) {
            return lang;
        }
        let mut ranges: Vec<(f32, Lang)> = accept_language
            .unwrap_or("")
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let lang = Lang::parse(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q > 0.0).then_some((q, lang))
            })
            .collect();
        // Stable: among equal weights the browser's order stands.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges.first().map_or(Lang::En, |(_, lang)| *lang)
    }

    /// The string for `key`; the key itself when the table lacks it (a test checks none do).
    pub fn t(self, key: &str) -> &'static str {
        STRINGS
            .iter()
            .find(|(k, _, _)| *k == key)
            .map(|(_, en, zh)| if self == Lang::En { *en } else { *zh })
            .unwrap_or("?")
    }

    /// `t(key)` with each `{name}` replaced by its value.
    pub fn fill(self, key: &str, values: &[(&str, &str)]) -> String {
        let mut s = self.t(key).to_owned();
        for (name, value) in values {
            s = s.replace(&format!("{{{name}}}"), value);
        }
        s
    }

    /// The whole table for the templates.
    pub fn table(self) -> BTreeMap<&'static str, &'static str> {
        STRINGS
            .iter()
            .map(|(k, en, zh)| (*k, if self == Lang::En { *en } else { *zh }))
            .collect()
    }
}

/// key, English, 中文.
const STRINGS: &[(&str, &str, &str)] = &[
    // Navigation and chrome.
    ("app_name", "FlexiProxy panel", "FlexiProxy 管理面板"),
    ("nav_adapters", "Adapters", "适配器"),
    ("nav_new", "New adapter", "创建适配器"),
    ("nav_usage", "Usage", "用量统计"),
    ("nav_users", "Users", "用户"),
    ("nav_audit", "Audit log", "审计日志"),
    ("audit_title", "Audit log", "审计日志"),
    ("audit_actor", "Who", "操作者"),
    ("audit_kind", "What", "操作"),
    ("audit_any", "Anything", "全部"),
    ("audit_filter", "Show", "筛选"),
    ("audit_time", "When (UTC)", "时间（UTC）"),
    ("audit_target", "On", "对象"),
    ("audit_client", "Client address", "客户端地址"),
    ("audit_detail", "Details", "详情"),
    ("audit_none", "Nothing recorded yet.", "暂无记录。"),
    ("audit_newer", "Newer", "较新"),
    ("audit_older", "Older", "较早"),
    ("audit_kind_sign_in", "Signed in", "登录"),
    ("audit_kind_sign_in_failed", "Sign-in failed", "登录失败"),
    ("audit_kind_user_signup", "Signed up", "注册"),
    ("audit_kind_adapter_create", "Adapter created", "创建适配器"),
    ("audit_kind_adapter_change", "Adapter changed", "修改适配器"),
    ("audit_kind_adapter_delete", "Adapter deleted", "删除适配器"),
    ("audit_kind_key_rotate", "Key rotated", "轮换密钥"),
    ("audit_kind_key_revoke", "Key revoked", "吊销密钥"),
    ("audit_kind_key_change", "Key relabelled", "修改密钥标签"),
    ("audit_kind_user_add", "User added", "添加用户"),
    ("audit_kind_user_change", "User changed", "修改用户"),
    ("audit_kind_user_delete", "User deleted", "删除用户"),
    ("audit_kind_quota_set", "Quota set", "设置配额"),
    ("audit_kind_invite_create", "Invitation made", "创建邀请码"),
    (
        "audit_kind_invite_revoke",
        "Invitation revoked",
        "撤销邀请码",
    ),
    ("audit_kind_password_change", "Password changed", "修改密码"),
    (
        "audit_kind_password_reset_link",
        "Reset link made",
        "创建重置链接",
    ),
    ("audit_kind_password_reset", "Password reset", "重置密码"),
    ("audit_kind_session_end", "Sessions ended", "结束会话"),
    ("sessions_title", "Your sessions", "您的会话"),
    ("session_started", "Started (UTC)", "开始时间（UTC）"),
    ("session_last_seen", "Last seen (UTC)", "最近活动（UTC）"),
    ("session_client", "Address", "地址"),
    ("session_agent", "Browser", "浏览器"),
    ("this_session", "This session", "当前会话"),
    ("end_session", "End", "结束"),
    (
        "end_other_sessions",
        "End all other sessions",
        "结束其他所有会话",
    ),
    ("sessions_ended", "Sessions ended.", "会话已结束。"),
    (
        "delete_account_title",
        "Delete your account",
        "删除您的账号",
    ),
    (
        "delete_account_text",
        "Your adapters are deleted with it and their keys stop working at once; every session ends. Your usage history stays, under your name. This cannot be undone.",
        "您的适配器将一并删除，其密钥立即失效；所有会话都会结束。用量历史会以您的用户名保留。此操作无法撤销。",
    ),
    (
        "delete_account_name",
        "Type your user name to confirm",
        "输入您的用户名以确认",
    ),
    ("delete_account", "Delete my account", "删除我的账号"),
    (
        "account_deleted",
        "Your account was deleted.",
        "您的账号已删除。",
    ),
    ("reset_title", "Set a new password", "设置新密码"),
    ("reset_set", "Set the password", "设置密码"),
    ("reset_link", "Reset link", "重置链接"),
    (
        "reset_link_made",
        "A one-time password-reset link, shown only now, for",
        "一次性密码重置链接（仅此一次显示），用户：",
    ),
    ("reset_expires", "works until", "有效期至"),
    (
        "reset_done",
        "Your password is set; every session of yours has ended. Log in with the new password.",
        "密码已设置，您的所有会话均已结束。请用新密码登录。",
    ),
    (
        "err_confirm_name",
        "Type your own user name to confirm.",
        "请输入您自己的用户名以确认。",
    ),
    (
        "err_last_admin",
        "The last admin cannot delete their account; make another admin first.",
        "最后一位管理员不能删除自己的账号；请先设置另一位管理员。",
    ),
    (
        "err_reset_invalid",
        "This link does not work: it is unknown, used or expired. Ask an admin for a new one.",
        "此链接无效：未知、已使用或已过期。请向管理员索取新链接。",
    ),
    (
        "err_audit_unavailable",
        "The audit log cannot be read; the server log says why.",
        "无法读取审计日志；原因见服务器日志。",
    ),
    ("logout", "Log out", "退出登录"),
    ("admin", "admin", "管理员"),
    ("switch_lang", "Language", "语言"),
    ("copy", "Copy", "复制"),
    ("copied", "Copied", "已复制"),
    ("copy_failed", "Select and copy by hand", "请手动选择并复制"),
    ("yes", "yes", "是"),
    ("no", "no", "否"),
    ("save", "Save", "保存"),
    ("cancel", "Cancel", "取消"),
    ("not_found", "Not found", "未找到"),
    (
        "exchanges_title",
        "Exchanges of {name}",
        "{name} 的请求记录",
    ),
    ("exchanges_link", "Exchanges", "请求记录"),
    ("check_provider", "Check provider", "检查供应商"),
    (
        "check_title",
        "Check the provider of {name}",
        "检查 {name} 的供应商",
    ),
    (
        "check_intro",
        "Sends the provider at most 12 small requests, one at a time, and shows which adapter options it needs.",
        "向供应商逐个发送最多 12 个很小的请求，并显示适配器需要哪些选项。",
    ),
    ("check_source", "Source", "来源"),
    ("check_default_source", "Default source", "默认来源"),
    ("check_route", "Route", "路由"),
    ("check_run", "Run the check", "开始检查"),
    ("check_col_check", "Check", "检查项"),
    ("check_col_outcome", "Outcome", "结果"),
    ("check_col_detail", "What was seen", "观察到的情况"),
    ("check_outcome_ok", "works", "正常"),
    (
        "check_outcome_needs_option",
        "needs an option",
        "需要设置选项",
    ),
    ("check_outcome_failed", "failed", "失败"),
    ("check_outcome_skipped", "skipped", "已跳过"),
    ("check_sent", "{n} requests sent.", "共发送 {n} 个请求。"),
    (
        "check_diff",
        "Change to the adapter file",
        "对适配器文件的修改",
    ),
    (
        "check_nothing",
        "No option needs to change.",
        "无需修改任何选项。",
    ),
    ("check_apply", "Apply these options", "应用这些选项"),
    (
        "check_applied",
        "The options were written into the adapter file and are in use.",
        "选项已写入适配器文件并已生效。",
    ),
    ("exchanges_back", "Back to the adapter", "返回适配器"),
    (
        "exchanges_off",
        "Inspection is off for this adapter: add inspect: { keep: 50 } to its file to keep its exchanges.",
        "此适配器未开启请求检查：在其配置文件中加入 inspect: { keep: 50 } 即可保留请求记录。",
    ),
    (
        "exchanges_none",
        "No exchange kept yet.",
        "尚未保留任何请求。",
    ),
    ("exchanges_time", "Time", "时间"),
    ("exchanges_model", "Model", "模型"),
    ("exchanges_status", "Status", "状态"),
    ("exchanges_duration", "Duration", "耗时"),
    ("exchanges_tokens", "Tokens in / out", "输入 / 输出 token"),
    ("exchanges_notes", "Notes", "改动"),
    (
        "exchanges_notes_title",
        "What the translation changed",
        "翻译时做的改动",
    ),
    (
        "exchanges_notes_none",
        "Nothing: sent on as the client sent it.",
        "无：按客户端发送的原样转发。",
    ),
    ("exchanges_facts", "Status", "状态"),
    ("exchanges_attempts", "attempts", "尝试次数"),
    ("exchanges_source", "source", "来源"),
    ("exchanges_key", "key", "密钥"),
    ("exchanges_first_byte", "first byte", "首字节"),
    ("exchanges_last_byte", "last byte", "末字节"),
    ("exchanges_headers", "Headers", "请求头"),
    (
        "exchanges_cut",
        "Cut at 256 KiB of",
        "已截断为 256 KiB，原大小",
    ),
    (
        "exchanges_client_request",
        "Client → proxy",
        "客户端 → 代理",
    ),
    (
        "exchanges_client_response",
        "Proxy → client",
        "代理 → 客户端",
    ),
    (
        "exchanges_provider_request",
        "Proxy → provider",
        "代理 → 服务商",
    ),
    (
        "exchanges_provider_response",
        "Provider → proxy",
        "服务商 → 代理",
    ),
    ("not_found_text", "There is no such page.", "没有这个页面。"),
    ("back_to_panel", "Back to the panel", "返回管理面板"),
    // Login.
    ("login_title", "Log in", "登录"),
    ("login_user", "User name", "用户名"),
    ("login_password", "Password", "密码"),
    ("login_submit", "Log in", "登录"),
    (
        "login_failed",
        "Wrong user name or password.",
        "用户名或密码错误。",
    ),
    (
        "login_limited",
        "Too many attempts; wait a minute and try again.",
        "尝试次数过多，请稍等一分钟再试。",
    ),
    ("logged_out", "You are logged out.", "您已退出登录。"),
    (
        "session_expired",
        "Your session has expired; log in again.",
        "会话已过期，请重新登录。",
    ),
    // The adapter list.
    ("adapters_title", "Adapters", "适配器"),
    ("create_adapter", "Create adapter", "创建适配器"),
    (
        "cap_used",
        "{used} of {max} adapters used",
        "已使用 {used} / {max} 个适配器",
    ),
    ("cap_used_nomax", "{used} adapters", "共 {used} 个适配器"),
    (
        "cap_full",
        "You have reached your adapter limit; delete one to create another.",
        "已达到适配器数量上限，请删除一个后再创建。",
    ),
    ("col_name", "Name", "名称"),
    ("col_owner", "Owner", "所有者"),
    ("col_protocol", "Source protocol", "源协议"),
    ("col_host", "Source host", "源服务地址"),
    ("col_model", "Model", "模型"),
    ("col_keys", "Keys", "密钥"),
    ("col_status", "Status", "状态"),
    ("col_base_url", "Base URL", "Base URL"),
    ("col_actions", "Actions", "操作"),
    ("no_label", "(no label)", "（无标签）"),
    ("key_created", "created", "创建于"),
    ("key_last_used", "last used", "最近使用"),
    (
        "key_never_used",
        "not used since the proxy started",
        "代理启动后未使用",
    ),
    ("new_key_label", "Label of the new key", "新密钥的标签"),
    ("new_key_label_hint", "e.g. laptop-2026", "例如 laptop-2026"),
    (
        "confirm_rotate",
        "Issue a new key for {name}? Without a grace period its current keys stop working at once.",
        "确定为 {name} 生成新密钥？如果不保留宽限期，当前密钥将立即失效。",
    ),
    ("client_keys_title", "Client keys", "客户端密钥"),
    (
        "client_keys_hint",
        "The keys your clients use for this adapter. Only their first characters are kept; revoke one that leaked, rotate from the list for a new one.",
        "客户端访问此适配器使用的密钥。只保存其开头几个字符；泄露的密钥请吊销，需要新密钥请在列表中重新生成。",
    ),
    ("revoke", "Revoke", "吊销"),
    (
        "confirm_revoke",
        "Revoke this key? Clients using it are refused at once.",
        "确定吊销此密钥？使用它的客户端将立即被拒绝。",
    ),
    ("save_label", "Save label", "保存标签"),
    ("key_expires", "expires", "过期于"),
    ("no_keys", "no keys", "无密钥"),
    ("status_ok", "ok", "正常"),
    ("status_cooling", "cooling down", "冷却中"),
    ("status_refused", "provider key refused", "供应商密钥被拒绝"),
    (
        "status_failing",
        "failing since {since}: {reason}",
        "自 {since} 起失败：{reason}",
    ),
    (
        "reason_connect",
        "the provider refuses connections or cannot be reached",
        "供应商拒绝连接或无法访问",
    ),
    (
        "reason_timeout",
        "the provider did not answer in time",
        "供应商未及时响应",
    ),
    (
        "reason_tls",
        "the provider's TLS certificate or handshake failed",
        "供应商的 TLS 证书或握手失败",
    ),
    (
        "reason_reset",
        "the provider closed the connection mid-answer",
        "供应商在响应途中关闭了连接",
    ),
    (
        "reason_protocol",
        "the provider's answer was malformed or broke off",
        "供应商的响应格式错误或中断",
    ),
    (
        "reason_http",
        "the provider answered HTTP {status}",
        "供应商返回 HTTP {status}",
    ),
    // Routes and provider keys on the adapter list.
    ("col_routes", "Routes", "路由"),
    ("no_routes", "none", "无"),
    ("route_when", "when", "条件"),
    (
        "routes_rest",
        "else the source above",
        "其余请求使用上面的源",
    ),
    ("col_provider_keys", "Provider keys", "供应商密钥"),
    ("route_default", "default", "默认"),
    ("fallback_n", "fallback {n}", "备用源 {n}"),
    ("provider_key_n", "key {n}", "密钥 {n}"),
    ("key_healthy", "healthy", "正常"),
    (
        "key_cooling",
        "cooling until {until}",
        "冷却中，直到 {until}",
    ),
    ("key_disabled", "disabled: {status}", "已停用：{status}"),
    (
        "key_failing",
        "failing, retried at {at}",
        "连续失败，将于 {at} 重试",
    ),
    (
        "key_half_open",
        "half-open (one trial request)",
        "半开（正在试探一次请求）",
    ),
    (
        "key_missing",
        "env var {var} missing",
        "环境变量 {var} 未设置",
    ),
    ("actions", "Actions", "操作"),
    ("test", "Test", "测试"),
    ("testing", "Testing…", "测试中…"),
    ("test_ok", "reachable", "可用"),
    ("test_failed", "failed", "失败"),
    ("rotate", "Rotate key", "重新生成密钥"),
    ("grace", "Old key keeps working for", "旧密钥继续有效"),
    ("grace_none", "no grace (stops now)", "立即失效"),
    ("grace_1h", "1 hour", "1 小时"),
    ("grace_24h", "24 hours", "24 小时"),
    ("grace_7d", "7 days", "7 天"),
    ("delete", "Delete", "删除"),
    (
        "confirm_delete",
        "Delete adapter {name}? Its keys stop working at once.",
        "确定删除适配器 {name}？其密钥将立即失效。",
    ),
    (
        "confirm_delete_title",
        "Delete adapter {name}",
        "删除适配器 {name}",
    ),
    (
        "deleted",
        "Adapter {name} deleted.",
        "适配器 {name} 已删除。",
    ),
    (
        "stale",
        "This adapter changed since you loaded the page; reload and try again.",
        "该适配器在页面加载后已被修改，请刷新页面后重试。",
    ),
    ("empty_list", "No adapters yet.", "还没有适配器。"),
    // Refusals, as the panel says them (`err_<code>` of the management's refusals).
    ("err_field", "{field}: {reason}", "{field}：{reason}"),
    ("details", "Details", "详情"),
    ("route_n", "Route {n}", "路由 {n}"),
    (
        "err_generic",
        "this was refused; check the value and try again.",
        "该值未被接受，请检查后重试。",
    ),
    ("err_required", "required; fill it in.", "必填，请填写。"),
    (
        "err_bad_url",
        "not a usable address; give one starting with https:// (or http://), e.g. https://api.example.com/v1.",
        "不是可用的地址；请填写以 https://（或 http://）开头的地址，例如 https://api.example.com/v1。",
    ),
    (
        "err_internal_source",
        "this address is inside the server's own network, which only an admin may use. Use the provider's public address, or ask the operator to allow this one.",
        "该地址位于服务器内部网络，只有管理员可以使用。请使用供应商的公网地址，或请运营者放行此地址。",
    ),
    (
        "err_env_ref",
        "write the value itself; references like ${NAME} to the server's environment are for the operator.",
        "请直接填写值；${NAME} 这类引用服务器环境变量的写法仅限运营者使用。",
    ),
    (
        "err_unknown_preset",
        "unknown provider; choose one from the list.",
        "未知的供应商，请从列表中选择。",
    ),
    (
        "err_protocol",
        "choose one of the listed protocols.",
        "请从列表中选择一种协议。",
    ),
    (
        "err_name_unavailable",
        "this name is not available; choose another of 1 to 64 letters, digits, dots, dashes and underscores.",
        "该名称不可用；请换一个由 1 到 64 个字母、数字、点、短横线和下划线组成的名称。",
    ),
    (
        "err_cap",
        "you have reached your adapter limit; delete one to create another, or ask an admin for more.",
        "已达到适配器数量上限；请删除一个后再创建，或联系管理员提高上限。",
    ),
    (
        "err_check_running",
        "a check of this adapter is running; try again when it has ended.",
        "该适配器的检查正在进行，请在结束后重试。",
    ),
    (
        "err_check_rate",
        "you have started several checks recently; wait a few minutes before the next one.",
        "您最近已发起多次检查，请等待几分钟后再试。",
    ),
    (
        "err_stale",
        "this adapter changed since you loaded the page; reload and try again.",
        "该适配器在页面加载后已被修改，请刷新页面后重试。",
    ),
    (
        "err_not_found",
        "not found; reload the page.",
        "未找到，请刷新页面。",
    ),
    (
        "err_bad_text",
        "must not contain line breaks, control or invisible characters.",
        "不能包含换行、控制字符或不可见字符。",
    ),
    ("err_too_long", "too long; shorten it.", "太长，请缩短。"),
    (
        "err_only_working_key",
        "this is the adapter's only working key; rotate it instead, or delete the adapter.",
        "这是该适配器唯一可用的密钥；请改为重新生成，或删除适配器。",
    ),
    (
        "err_only_key",
        "this is its source's only provider key; add another before removing it.",
        "这是该来源唯一的供应商密钥；请先添加另一个再移除。",
    ),
    (
        "err_when",
        "give at least one condition: the client's model, images, input tokens or reasoning.",
        "请至少填写一个条件：客户端模型、图片、输入 token 数或推理。",
    ),
    (
        "err_number",
        "a whole number, or empty for none.",
        "请填写整数，留空表示不限制。",
    ),
    // Editing an adapter.
    ("edit", "Edit", "编辑"),
    ("edit_title", "Edit {name}", "编辑 {name}"),
    (
        "edit_saved",
        "Saved; the proxy uses it now.",
        "已保存，代理已开始使用。",
    ),
    ("edit_source", "Default source", "默认来源"),
    (
        "edit_source_hint",
        "Serves every request no route takes.",
        "处理所有未被路由接管的请求。",
    ),
    ("pool_title", "Provider keys", "供应商密钥"),
    (
        "pool_hint",
        "Requests are spread over these keys; a refused or rate-limited key is skipped while others work. Keys are never shown.",
        "请求分配到这些密钥上；被拒绝或限流的密钥会被跳过，其他密钥继续工作。密钥不会被显示。",
    ),
    ("add_key", "Add key", "添加密钥"),
    ("new_key", "New provider API key", "新的供应商 API Key"),
    ("remove", "Remove", "移除"),
    ("routes_title", "Routes", "路由"),
    (
        "routes_hint",
        "Checked in order: the first whose conditions all hold serves the request; otherwise the default source does.",
        "按顺序检查：第一个条件全部满足的路由处理请求，否则由默认来源处理。",
    ),
    ("add_route", "Add a route", "添加路由"),
    ("model_map_title", "Model map", "模型映射"),
    (
        "model_map_hint",
        "The first rule whose pattern matches the client's model names the provider's model; otherwise the model above.",
        "第一个匹配客户端模型的规则决定供应商模型；否则使用上面的模型。",
    ),
    ("add_rule", "Add rule", "添加规则"),
    ("limits_title", "Limits", "限额"),
    (
        "limits_hint",
        "Per client key; leave a field empty for no limit.",
        "按客户端密钥计算；留空表示不限制。",
    ),
    (
        "limit_requests_per_minute",
        "Requests per minute",
        "每分钟请求数",
    ),
    (
        "limit_concurrent_requests",
        "Requests at once",
        "同时请求数",
    ),
    (
        "limit_tokens_per_day",
        "Tokens per day (UTC)",
        "每日 token 数（UTC）",
    ),
    (
        "limit_tokens_per_month",
        "Tokens per month (UTC)",
        "每月 token 数（UTC）",
    ),
    ("save_route", "Save route", "保存路由"),
    ("route_name", "Route name", "路由名称"),
    (
        "hint_route_name",
        "Optional; logs and metrics use it (else its number).",
        "可选；日志和指标使用它（否则使用序号）。",
    ),
    (
        "route_conditions",
        "When (all must hold)",
        "条件（需全部满足）",
    ),
    (
        "when_model",
        "Client's model (glob, e.g. claude-*haiku*)",
        "客户端模型（通配，例如 claude-*haiku*）",
    ),
    (
        "when_images",
        "Images or documents in the request",
        "请求包含图片或文档",
    ),
    (
        "when_min_tokens",
        "At least this many input tokens",
        "输入 token 数至少为",
    ),
    (
        "when_thinking",
        "The client asks for reasoning",
        "客户端请求推理",
    ),
    ("when_any", "either", "不限"),
    ("route_goes_to", "Goes to", "转发到"),
    ("move_up", "Move up", "上移"),
    ("move_down", "Move down", "下移"),
    ("remove_route", "Remove route", "删除路由"),
    (
        "confirm_remove_route",
        "Remove route {name}? Its requests go to the next matching route or the default source.",
        "确定删除路由 {name}？其请求将交给下一个匹配的路由或默认来源。",
    ),
    // Creating an adapter.
    ("new_title", "Create adapter", "创建适配器"),
    (
        "new_intro",
        "An adapter maps a provider (its base URL, API key and model) to the API your client speaks. You get a new API key for your client.",
        "适配器把供应商（Base URL、API Key 和模型）映射为客户端使用的 API，并为客户端生成新的 API Key。",
    ),
    ("field_name", "Adapter name", "适配器名称"),
    (
        "hint_name",
        "Letters, digits, dot, dash and underscore.",
        "字母、数字、点、短横线和下划线。",
    ),
    ("field_provider", "Provider", "供应商"),
    ("custom", "Custom", "自定义"),
    ("field_base_url", "Provider base URL", "供应商 Base URL"),
    ("field_api_key", "Provider API key", "供应商 API Key"),
    (
        "hint_api_key",
        "Used only to forward your requests to the provider; it is never shown again.",
        "仅用于向供应商转发请求，之后不会再显示。",
    ),
    ("field_model", "Model ID", "模型 ID"),
    ("field_protocol", "Source protocol", "源协议"),
    (
        "hint_protocol",
        "The API the provider speaks: openai (Chat Completions), anthropic (Messages), responses, gemini.",
        "供应商使用的 API：openai（Chat Completions）、anthropic（Messages）、responses、gemini。",
    ),
    ("field_label", "Key label", "密钥标签"),
    (
        "hint_label",
        "Optional, e.g. laptop: tells your keys apart.",
        "可选，例如 laptop，用于区分密钥。",
    ),
    (
        "field_client",
        "Which client will you use?",
        "你将使用哪个客户端？",
    ),
    (
        "hint_client",
        "Its setup is shown first with the new key; the others stay one click away.",
        "生成密钥后会先显示它的配置，其他客户端的配置可展开查看。",
    ),
    ("client_claude_code", "Claude Code", "Claude Code"),
    ("client_cline", "Cline", "Cline"),
    ("client_codex", "Codex CLI", "Codex CLI"),
    ("client_gemini_cli", "Gemini CLI", "Gemini CLI"),
    (
        "client_sdk",
        "An SDK (OpenAI, Anthropic, Google)",
        "SDK（OpenAI、Anthropic、Google）",
    ),
    ("client_several", "Several / not sure", "多个 / 不确定"),
    ("other_clients", "Other clients", "其他客户端"),
    (
        "setup_codex_note",
        "Codex asks for the model named here (one it knows, so it sizes its context right); FlexiProxy sends every request to this adapter's model, {model}, or as its model map says.",
        "Codex 会请求这里写的模型（它认识的模型，以便正确估算上下文）；FlexiProxy 会把每个请求发往本适配器的模型 {model}，或按模型映射转发。",
    ),
    ("create", "Create", "确认创建"),
    // The key, once.
    ("key_title", "API key for {name}", "{name} 的 API Key"),
    (
        "key_warning",
        "Copy this key now: it is shown only once and cannot be shown again.",
        "请立即复制此密钥：它只显示这一次，之后无法再次查看。",
    ),
    (
        "key_gone",
        "This key was shown once; rotate to get a new one.",
        "此密钥已显示过一次；如需新密钥，请重新生成。",
    ),
    ("key_base_url", "Base URL", "Base URL"),
    ("setup_title", "Set up your client", "配置客户端"),
    (
        "setup_later",
        "Client setup (without the key)",
        "客户端配置（不含密钥）",
    ),
    ("setup_menu", "Client setup", "客户端配置"),
    (
        "setup_page_title",
        "Client setup for {name}",
        "{name} 的客户端配置",
    ),
    (
        "setup_placeholder_note",
        "The key was shown once, when it was issued: put yours where the snippets say {placeholder}, or rotate to get a new one.",
        "密钥只在生成时显示一次：请在配置中 {placeholder} 的位置填入你的密钥，或重新生成一个新密钥。",
    ),
    (
        "key_lang_warning",
        "Switching the language reloads this page, and the key will not be shown again. Copy it first. Switch anyway?",
        "切换语言会重新加载页面，密钥将不再显示。请先复制密钥。仍要切换吗？",
    ),
    (
        "setup_claude_env",
        "Claude Code — environment",
        "Claude Code — 环境变量",
    ),
    (
        "setup_claude_settings",
        "Claude Code — .claude/settings.json (claude --settings …)",
        "Claude Code — .claude/settings.json（claude --settings …）",
    ),
    ("setup_cline", "Cline", "Cline"),
    (
        "setup_cline_text",
        "API Provider: Anthropic, API key: the key above, Use custom base URL: {base}. Or API Provider: OpenAI Compatible with the same base URL and key.",
        "API Provider 选择 Anthropic，API Key 填写上面的密钥，勾选 Use custom base URL 并填写 {base}。也可以选择 OpenAI Compatible，使用相同的 Base URL 和密钥。",
    ),
    (
        "setup_codex",
        "Codex CLI — ~/.codex/config.toml",
        "Codex CLI — ~/.codex/config.toml",
    ),
    (
        "setup_codex_env",
        "Codex CLI — environment",
        "Codex CLI — 环境变量",
    ),
    (
        "setup_gemini_env",
        "Gemini CLI — environment",
        "Gemini CLI — 环境变量",
    ),
    (
        "setup_gemini_settings",
        "Gemini CLI — ~/.gemini/settings.json",
        "Gemini CLI — ~/.gemini/settings.json",
    ),
    (
        "setup_openai_sdk",
        "OpenAI SDK (Python)",
        "OpenAI SDK（Python）",
    ),
    (
        "setup_anthropic_sdk",
        "Anthropic SDK (Python)",
        "Anthropic SDK（Python）",
    ),
    (
        "setup_google_genai",
        "google-genai (Python)",
        "google-genai（Python）",
    ),
    // Usage.
    ("usage_title", "Usage", "用量统计"),
    ("usage_since", "Period", "时间范围"),
    (
        "stats_off",
        "Usage statistics are off (the default).",
        "用量统计未开启（默认关闭）。",
    ),
    (
        "stats_off_how",
        "To turn them on, add this to conf/flexiproxy.yaml; the proxy then records requests, tokens, errors and latency per adapter and key:",
        "如需开启，请在 conf/flexiproxy.yaml 中加入以下配置；之后代理会按适配器和密钥记录请求数、token、错误和延迟：",
    ),
    (
        "usage_error",
        "Usage statistics cannot be read right now. Try again in a minute; if it persists, the proxy's log says why.",
        "暂时无法读取用量统计。请稍后再试；如果一直如此，代理日志中有原因。",
    ),
    ("usage_all", "All adapters", "全部适配器"),
    ("usage_by_model", "By provider model", "按供应商模型"),
    ("usage_by_key", "By client key", "按客户端密钥"),
    ("usage_deleted", "Deleted adapters", "已删除的适配器"),
    (
        "usage_deleted_note",
        "Their history stays here until the statistics' retention period ends.",
        "它们的历史记录会保留到统计数据的保存期结束。",
    ),
    ("usage_recent", "Latest requests", "最近的请求"),
    (
        "usage_recent_note",
        "The last 100, newest first, whatever the period. Times are UTC.",
        "最近 100 条，最新的在前，不受时间范围影响。时间为 UTC。",
    ),
    ("usage_csv", "Download CSV", "下载 CSV"),
    ("col_cost", "Cost", "费用"),
    ("cost_unknown", "unknown", "未知"),
    ("col_time", "Time (UTC)", "时间（UTC）"),
    ("col_http_status", "Status", "状态码"),
    ("col_tokens", "Tokens in / out", "token 输入 / 输出"),
    ("col_error", "What went wrong", "出错原因"),
    ("col_adapter_name", "Adapter", "适配器"),
    (
        "usage_err_connect",
        "The provider could not be reached (connection refused or no route).",
        "无法连接供应商（连接被拒绝或无路由）。",
    ),
    (
        "usage_err_timeout",
        "The provider did not answer in time.",
        "供应商未在规定时间内响应。",
    ),
    (
        "usage_err_tls",
        "The secure connection to the provider failed.",
        "与供应商的安全连接（TLS）失败。",
    ),
    (
        "usage_err_reset",
        "The provider closed the connection mid-answer.",
        "供应商在回答中途断开了连接。",
    ),
    (
        "usage_err_protocol",
        "The provider's answer could not be read.",
        "无法解析供应商的回答。",
    ),
    (
        "usage_err_stream_error",
        "The provider's stream broke off with an error.",
        "供应商的流式回答因错误中断。",
    ),
    (
        "usage_err_shutdown",
        "The proxy was restarting.",
        "代理正在重启。",
    ),
    (
        "usage_err_provider",
        "The provider answered with an error.",
        "供应商返回了错误。",
    ),
    (
        "usage_err_gateway",
        "Refused by FlexiProxy (a limit, a budget, a key or a malformed request).",
        "被 FlexiProxy 拒绝（限额、预算、密钥或请求格式问题）。",
    ),
    (
        "usage_empty",
        "No requests in this period.",
        "该时间范围内没有请求。",
    ),
    (
        "chart_requests",
        "Requests per hour (errors in red)",
        "每小时请求数（红色为错误）",
    ),
    ("chart_tokens", "Tokens per hour", "每小时 token 数"),
    (
        "chart_requests_day",
        "Requests per day (errors in red)",
        "每天请求数（红色为错误）",
    ),
    ("chart_tokens_day", "Tokens per day", "每天 token 数"),
    (
        "chart_latency_day",
        "Average latency per day (ms)",
        "每天平均延迟（毫秒）",
    ),
    (
        "chart_latency",
        "Average latency per hour (ms)",
        "每小时平均延迟（毫秒）",
    ),
    ("col_key", "Key", "密钥"),
    ("col_requests", "Requests", "请求数"),
    ("col_errors", "Errors", "错误数"),
    ("col_input", "Input tokens", "输入 token"),
    ("col_output", "Output tokens", "输出 token"),
    ("col_cached", "Cached tokens", "缓存 token"),
    ("col_latency", "Avg latency", "平均延迟"),
    ("total", "Total", "合计"),
    ("series_requests", "requests", "请求"),
    ("series_errors", "errors", "错误"),
    ("series_input", "input", "输入"),
    ("series_output", "output", "输出"),
    ("series_cached", "cached", "缓存"),
    ("series_latency", "latency", "延迟"),
    // Users.
    ("users_title", "Users", "用户"),
    ("col_user", "User", "用户"),
    ("col_admin", "Admin", "管理员"),
    ("col_cap", "Max adapters", "适配器上限"),
    ("col_owned", "Adapters owned", "拥有的适配器"),
    (
        "cap_saved",
        "Limit for {name} set to {max}.",
        "{name} 的上限已设为 {max}。",
    ),
    (
        "admins_only",
        "This page is for admins.",
        "此页面仅限管理员访问。",
    ),
    (
        "bad_request",
        "The form was incomplete or malformed.",
        "表单不完整或格式错误。",
    ),
    (
        "csrf_failed",
        "The form expired (security token mismatch); reload the page and try again.",
        "表单已失效（安全令牌不匹配），请刷新页面后重试。",
    ),
    // Accounts without a shell (issue #27): sign-up, invitations, approval, own password.
    ("signup_link", "No account? Sign up", "没有账号？注册"),
    ("signup_title", "Sign up", "注册"),
    ("signup_submit", "Create account", "创建账号"),
    (
        "signup_have_account",
        "Already have an account? Log in",
        "已有账号？登录",
    ),
    (
        "hint_username",
        "1 to 64 letters, digits, dots, dashes and underscores.",
        "1 到 64 个字母、数字、点、短横线和下划线。",
    ),
    (
        "hint_password",
        "At least 10 characters and hard to guess: a phrase of unrelated words works well.",
        "至少 10 个字符且不易猜测：几个不相关的词组成的短语就很好。",
    ),
    ("password_again", "Password again", "再次输入密码"),
    (
        "passwords_differ",
        "The two passwords differ; type them again.",
        "两次输入的密码不一致，请重新输入。",
    ),
    ("invite_code", "Invitation code", "邀请码"),
    (
        "signup_done",
        "Your account is ready; log in.",
        "账号已创建，请登录。",
    ),
    ("signup_pending_title", "Almost there", "即将完成"),
    (
        "signup_pending",
        "Your account was created and waits for an admin's approval; you can log in once it is approved.",
        "账号已创建，正在等待管理员审核；审核通过后即可登录。",
    ),
    ("signup_closed_title", "Sign-up is closed", "注册已关闭"),
    (
        "login_pending",
        "Your account waits for an admin's approval.",
        "您的账号正在等待管理员审核。",
    ),
    (
        "login_disabled",
        "This account is disabled; ask an admin.",
        "该账号已被停用，请联系管理员。",
    ),
    // Single sign-on (issue #27): the login page's buttons and every refusal of a sign-in.
    ("sso_or", "Or sign in with", "或使用以下方式登录"),
    ("sso_with", "Sign in with", "登录方式："),
    ("sso_signed_in", "Signed in", "已登录"),
    (
        "sso_to_provider",
        "On to the sign-in provider…",
        "正在前往登录提供方……",
    ),
    (
        "err_sso_unknown",
        "There is no such sign-in provider.",
        "没有这个登录提供方。",
    ),
    (
        "err_sso_state",
        "This sign-in expired, was already used or was started in another browser; start again.",
        "此次登录已过期、已被使用或在其他浏览器中发起，请重新开始。",
    ),
    (
        "err_sso_denied",
        "The sign-in was cancelled or refused at the provider.",
        "登录在提供方处被取消或拒绝。",
    ),
    (
        "err_sso_provider_down",
        "The sign-in provider did not answer; try again later.",
        "登录提供方没有响应，请稍后再试。",
    ),
    (
        "err_sso_code_refused",
        "The sign-in provider refused this sign-in (used or expired); start again.",
        "登录提供方拒绝了此次登录（已使用或已过期），请重新开始。",
    ),
    (
        "err_sso_token_invalid",
        "The sign-in provider's answer failed its security checks; you are not signed in.",
        "登录提供方的应答未通过安全校验，未能登录。",
    ),
    (
        "err_sso_domain",
        "Your email address (verified) is not in a domain allowed here.",
        "您的（已验证）邮箱不属于此处允许的域名。",
    ),
    (
        "err_sso_org",
        "You are not a member of an organisation allowed here.",
        "您不是此处允许的组织的成员。",
    ),
    (
        "err_sso_closed",
        "No account here is linked to this identity, and sign-up is closed; ask an admin.",
        "此身份没有关联的账号，且本服务器未开放注册，请联系管理员。",
    ),
    (
        "err_sso_invite_only",
        "Sign-up here needs an invitation; ask an admin for an account.",
        "在此注册需要邀请，请联系管理员开通账号。",
    ),
    (
        "err_sso_pending_new",
        "Your account was created and waits for an admin's approval.",
        "账号已创建，正在等待管理员审核。",
    ),
    (
        "err_sso_pending",
        "Your account waits for an admin's approval.",
        "您的账号正在等待管理员审核。",
    ),
    (
        "err_sso_disabled",
        "This account is disabled; ask an admin.",
        "该账号已被停用，请联系管理员。",
    ),
    (
        "err_sso_saving",
        "The account could not be saved; an admin can read why in the log.",
        "账号无法保存，管理员可在日志中查看原因。",
    ),
    ("account_title", "My account", "我的账号"),
    ("quota_title", "Your quota", "您的配额"),
    ("col_quota", "Quota", "配额"),
    ("quota_default", "the default quota", "默认配额"),
    (
        "quota_hint",
        "requests_per_day=…,tokens_per_month=…,cost_per_month=…, or unlimited; empty: the default quota",
        "requests_per_day=…,tokens_per_month=…,cost_per_month=…，或 unlimited；留空：默认配额",
    ),
    (
        "quota_saved",
        "Quota of {name} saved.",
        "已保存 {name} 的配额。",
    ),
    ("quota_requests_day", "Requests today", "今日请求数"),
    ("quota_tokens_month", "Tokens this month", "本月令牌数"),
    ("quota_cost_month", "Cost this month", "本月费用"),
    (
        "quota_warning",
        "{percent} % used: requests past the quota are refused until it resets.",
        "已用 {percent}%：超出配额的请求将被拒绝，直到配额重置。",
    ),
    (
        "quota_resets",
        "The day's count resets at {day}, the month's at {month} (UTC). A request whose cost is unknown counts 0 toward the cost.",
        "每日计数于 {day} 重置，每月计数于 {month} 重置（UTC）。费用未知的请求不计入费用。",
    ),
    ("current_password", "Current password", "当前密码"),
    ("new_password", "New password", "新密码"),
    ("change_password", "Change password", "修改密码"),
    (
        "change_password_hint",
        "Your other sessions (other browsers, scripts) end.",
        "您的其他会话（其他浏览器、脚本）将被结束。",
    ),
    (
        "password_changed",
        "Password changed; your other sessions have ended.",
        "密码已修改，您的其他会话已结束。",
    ),
    ("col_account_status", "Status", "状态"),
    ("status_active", "active", "正常"),
    ("status_pending", "waiting for approval", "待审核"),
    ("status_disabled", "disabled", "已停用"),
    ("approve", "Approve", "批准"),
    ("enable", "Enable", "启用"),
    ("disable", "Disable", "停用"),
    (
        "status_saved",
        "Saved the status of {name}.",
        "已保存 {name} 的状态。",
    ),
    ("invites_title", "Invitations", "邀请码"),
    ("registration_is", "Registration:", "注册方式："),
    (
        "invite_created",
        "The new code, shown this once: copy it and pass it on.",
        "新的邀请码只显示这一次：请复制并转交。",
    ),
    ("invite_uses", "Uses", "可用次数"),
    ("invite_uses_left", "Uses left", "剩余次数"),
    ("invite_expires", "Expires", "过期时间"),
    ("expires_1d", "in 1 day", "1 天后"),
    ("expires_7d", "in 7 days", "7 天后"),
    ("expires_30d", "in 30 days", "30 天后"),
    ("create_invite", "Create invitation", "创建邀请码"),
    ("col_invite", "Invitation", "邀请码"),
    ("invite_unusable", "used up or expired", "已用完或已过期"),
    ("invite_revoked", "Invitation revoked.", "邀请码已吊销。"),
    ("no_invites", "No invitations.", "没有邀请码。"),
    (
        "err_signup_closed",
        "sign-up is closed on this server; ask an admin for an account.",
        "本服务器未开放注册，请联系管理员开通账号。",
    ),
    (
        "err_name_taken",
        "this name is taken; choose another.",
        "该名称已被占用，请换一个。",
    ),
    (
        "err_password_short",
        "use at least 10 characters.",
        "至少需要 10 个字符。",
    ),
    (
        "err_password_weak",
        "too easy to guess (a common password, a name or a pattern); use a longer phrase of unrelated words, or a password manager.",
        "太容易被猜到（常见密码、名字或规律）；请使用由不相关词语组成的更长短语，或使用密码管理器。",
    ),
    (
        "err_invite_required",
        "an invitation code is needed to sign up here; ask an admin for one.",
        "在此注册需要邀请码，请向管理员索取。",
    ),
    (
        "err_invite_invalid",
        "this code is not valid: unknown, used up, expired or revoked.",
        "该邀请码无效：不存在、已用完、已过期或已被吊销。",
    ),
    (
        "err_signup_limited",
        "too many sign-ups from your address; try again in a few minutes.",
        "来自您地址的注册过多，请几分钟后再试。",
    ),
    (
        "err_too_many",
        "too many attempts; wait a few minutes and try again.",
        "尝试次数过多，请等几分钟再试。",
    ),
    (
        "err_wrong_password",
        "wrong; type your current password.",
        "不正确，请输入您当前的密码。",
    ),
    (
        "err_self_disable",
        "you cannot disable your own account.",
        "不能停用您自己的账号。",
    ),
    (
        "err_admins_only",
        "only an admin may do this.",
        "只有管理员可以执行此操作。",
    ),
    (
        "err_duration",
        "a duration like 7d or 12h, at most 366 days.",
        "请填写时长，例如 7d 或 12h，最长 366 天。",
    ),
    // End of issue #27's block.
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(Lang::negotiate(None, None), Lang::En);
        assert_eq!(
            Lang::negotiate(None, Some("zh-CN,zh;q=0.9,en;q=0.8")),
            Lang::Zh
        );
        assert_eq!(
            Lang::negotiate(None, Some("en-US,en;q=0.9,zh;q=0.8")),
            Lang::En
        );
        assert_eq!(Lang::negotiate(None, Some("fr-FR, zh-TW;q=0.5")), Lang::Zh);
        assert_eq!(Lang::negotiate(None, Some("en;q=0.2, zh;q=0.7")), Lang::Zh);
        assert_eq!(Lang::negotiate(None, Some("zh;q=0, en")), Lang::En);
        assert_eq!(Lang::negotiate(Some("en"), Some("zh-CN")), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh"), None), Lang::Zh);
        assert_eq!(Lang::negotiate(Some("xx"), Some("zh")), Lang::Zh);
    }

    #[test]
    fn the_table_is_complete_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for (key, en, zh) in STRINGS {
            assert!(seen.insert(key), "{key} twice");
            assert!(!en.is_empty() && !zh.is_empty(), "{key} is empty");
            // Both sides carry the same placeholders.
            let holes = |s: &str| {
                let mut v: Vec<String> = s
                    .split('{')
                    .skip(1)
                    .filter_map(|p| p.split_once('}').map(|(n, _)| n.to_owned()))
                    .collect();
                v.sort();
                v
            };
            assert_eq!(holes(en), holes(zh), "{key}'s placeholders differ");
        }
    }

    #[test]
    fn every_key_the_templates_use_exists() {
        let table = Lang::En.table();
        for (name, text) in crate::admin::panel::TEMPLATES {
            let mut rest = *text;
            while let Some(at) = rest.find("t.") {
                let word_start = rest[..at]
                    .chars()
                    .last()
                    .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
                rest = &rest[at + 2..];
                let key: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if word_start && !key.is_empty() {
                    assert!(table.contains_key(key.as_str()), "{name} uses t.{key}");
                }
            }
        }
    }

    #[test]
    fn fill_replaces_placeholders() {
        assert_eq!(
            Lang::En.fill("cap_used", &[("used", "2"), ("max", "5")]),
            "2 of 5 adapters used"
        );
        assert_eq!(
            Lang::Zh.fill("cap_used", &[("used", "2"), ("max", "5")]),
            "已使用 2 / 5 个适配器"
        );
    }
}
