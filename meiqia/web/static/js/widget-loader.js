/*
 * meiqia widget loader: <script src="https://HOST/widget.js" data-team="1" async></script>
 *
 * Adds a chat button and a panel (an iframe of HOST/widget/frame) to the page.
 * Optional attributes: data-lang="zh-CN|en", data-color="#1f6feb", data-position="left|right".
 * JS API (may be called before the script has loaded, see docs/ui.md):
 *   window.meiqiaSettings = {visitor: {name, phone, email, custom: {...}}, lang: 'en'};
 *   MeiqiaWidget.identify({name, phone, email, custom}); MeiqiaWidget.open(); MeiqiaWidget.close();
 * Nothing of the embedding page is read but its URL, referrer and title.
 */
(function () {
  'use strict';
  if (window.MeiqiaWidget && window.MeiqiaWidget.loaded) return;
  var script = document.currentScript || document.querySelector('script[src*="widget.js"][data-team]');
  if (!script) return;
  var origin = new URL(script.src, location.href).origin;
  var settings = window.meiqiaSettings || {};
  var team = script.getAttribute('data-team') || settings.team;
  var lang = script.getAttribute('data-lang') || settings.lang || '';
  var color = script.getAttribute('data-color') || settings.color || '#1f6feb';
  var position = script.getAttribute('data-position') || settings.position || 'right';
  if (!/^#[0-9a-fA-F]{6}$/.test(color)) color = '#1f6feb';
  var visitor = settings.visitor || {};
  var frame = null, ready = false, isOpen = false, unread = 0;

  var host = document.createElement('div');
  host.id = 'meiqia-widget';
  var root = host.attachShadow ? host.attachShadow({ mode: 'open' }) : host;
  var side = position === 'left' ? 'left' : 'right';
  var style = document.createElement('style');
  style.textContent =
    ':host{all:initial}' +
    '.mq-button{position:fixed;bottom:20px;' + side + ':20px;width:56px;height:56px;border-radius:50%;border:0;' +
    'background:' + color + ';color:#fff;box-shadow:0 4px 16px rgba(0,0,0,.25);cursor:pointer;z-index:2147483000;' +
    'display:flex;align-items:center;justify-content:center;padding:0}' +
    '.mq-button svg{width:28px;height:28px;fill:#fff}' +
    '.mq-badge{position:absolute;top:-2px;right:-2px;min-width:20px;height:20px;border-radius:10px;background:#cf222e;' +
    'color:#fff;font:12px/20px sans-serif;text-align:center;padding:0 5px;box-sizing:border-box}' +
    '.mq-panel{position:fixed;bottom:88px;' + side + ':20px;width:380px;height:min(640px,calc(100vh - 110px));' +
    'border-radius:12px;overflow:hidden;box-shadow:0 8px 40px rgba(0,0,0,.25);z-index:2147483001;background:#fff;display:none}' +
    '.mq-panel.open{display:block}' +
    '.mq-panel iframe{width:100%;height:100%;border:0;display:block}' +
    '@media (max-width:480px){.mq-panel{top:0;left:0;right:0;bottom:0;width:100%;height:100%;border-radius:0}' +
    '.mq-open .mq-button{display:none}}';
  root.appendChild(style);
  var wrap = document.createElement('div');
  root.appendChild(wrap);

  var button = document.createElement('button');
  button.className = 'mq-button';
  button.type = 'button';
  button.setAttribute('aria-label', /^zh/i.test(lang || navigator.language) ? '在线客服' : 'Chat with us');
  button.innerHTML = '<svg viewBox="0 0 24 24" aria-hidden="true"><path d="M12 3C6.5 3 2 6.9 2 11.6c0 2.6 1.4 4.9 3.6 6.5L5 21.5l3.9-2.1c1' +
    ' .3 2 .5 3.1.5 5.5 0 10-3.9 10-8.7S17.5 3 12 3z"/></svg>';
  var badge = document.createElement('span');
  badge.className = 'mq-badge';
  badge.style.display = 'none';
  button.appendChild(badge);
  var panel = document.createElement('div');
  panel.className = 'mq-panel';
  panel.setAttribute('role', 'dialog');
  wrap.appendChild(panel);
  wrap.appendChild(button);

  function post(type, data) {
    if (frame && ready) frame.contentWindow.postMessage({ meiqia: type, data: data || {} }, origin);
  }

  function initData() {
    return {
      visitor: visitor, landing_page: location.href.slice(0, 2000),
      referrer: document.referrer.slice(0, 2000), title: document.title.slice(0, 300),
    };
  }

  function ensureFrame() {
    if (frame) return;
    frame = document.createElement('iframe');
    var query = 'team=' + encodeURIComponent(team) + (lang ? '&lang=' + encodeURIComponent(lang) : '');
    frame.src = origin + '/widget/frame?' + query;
    frame.title = button.getAttribute('aria-label');
    frame.allow = 'clipboard-write';
    panel.appendChild(frame);
  }

  function setUnread(count) {
    unread = count;
    badge.textContent = count > 99 ? '99+' : String(count);
    badge.style.display = count > 0 && !isOpen ? 'block' : 'none';
  }

  function open() {
    ensureFrame();
    isOpen = true;
    panel.classList.add('open');
    wrap.classList.add('mq-open');
    setUnread(0);
    post('visible', { visible: true });
  }

  function close() {
    isOpen = false;
    panel.classList.remove('open');
    wrap.classList.remove('mq-open');
    post('visible', { visible: false });
  }

  button.addEventListener('click', function () { if (isOpen) close(); else open(); });

  window.addEventListener('message', function (event) {
    if (!frame || event.source !== frame.contentWindow || event.origin !== origin) return;
    var msg = event.data || {};
    if (msg.meiqia === 'ready') {
      ready = true;
      post('init', initData());
      post('visible', { visible: isOpen });
    } else if (msg.meiqia === 'unread') {
      setUnread(Number(msg.data && msg.data.count) || 0);
    } else if (msg.meiqia === 'close') {
      close();
    }
  });

  window.MeiqiaWidget = {
    loaded: true,
    open: open,
    close: close,
    identify: function (info) {
      info = info || {};
      for (var key in info) {
        if (!Object.prototype.hasOwnProperty.call(info, key)) continue;
        // Custom information adds to what the page gave before (meiqiaSettings).
        if (key === 'custom' && info.custom && typeof info.custom === 'object') {
          var custom = {};
          var k;
          for (k in visitor.custom || {}) if (Object.prototype.hasOwnProperty.call(visitor.custom, k)) custom[k] = visitor.custom[k];
          for (k in info.custom) if (Object.prototype.hasOwnProperty.call(info.custom, k)) custom[k] = info.custom[k];
          visitor.custom = custom;
        } else {
          visitor[key] = info[key];
        }
      }
      post('identify', visitor);
    },
  };

  function mount() {
    document.body.appendChild(host);
    // Load the frame soon after the page so agent messages arrive (and show on the badge)
    // before the visitor opens the panel.
    setTimeout(ensureFrame, 500);
  }
  if (document.body) mount(); else document.addEventListener('DOMContentLoaded', mount);
})();
