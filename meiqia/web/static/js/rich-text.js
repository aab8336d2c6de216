// Rich answers: the small markdown subset the knowledge base's answers (and agents'
// replies) may use, drawn as DOM nodes. The text is never parsed as HTML: every piece
// goes in through textContent or setAttribute, so "<b>", "&lt;" and such stay text.
//
//   [label](url)   a link, opened in a new tab (target=_blank, rel=noopener)
//   ![alt](url)    an image (lazy-loaded, a link to the full image)
//   https://…      a bare address becomes a link too
//
// A url must be http:// or https://, or site-relative (/static/…, not //host).
// Anything else — javascript:, data:, mailto:, relative paths — is left as the plain
// text it was written as, so it can never be clicked or loaded.

const TOKEN = /(!?)\[([^\]\n]{0,500})\]\(\s*([^\s()]{1,2000})\s*\)|\bhttps?:\/\/[^\s<>()[\]{}"'，。！？；：、（）]{1,2000}/giu;
// A bare address does not take the sentence's closing punctuation with it.
const TRAILING = /[.,;:!?]+$/;

/** The url itself when it may be linked or loaded, else null. */
export function safeUrl(raw) {
  const url = String(raw || '').trim();
  // No control characters or white space anywhere (a "java\tscript:" trick).
  // eslint-disable-next-line no-control-regex
  if (!url || /[\u0000-\u0020\u007f-\u009f\\]/u.test(url)) return null;
  if (/^https?:\/\/[^/?#]+/i.test(url)) return url;
  if (url.startsWith('/') && !url.startsWith('//')) return url;
  return null;
}

function link(href, label) {
  const a = document.createElement('a');
  a.href = href;
  a.target = '_blank';
  a.rel = 'noopener';
  a.className = 'rich-link';
  a.textContent = label;
  return a;
}

function image(src, alt) {
  const img = document.createElement('img');
  img.src = src;
  img.alt = alt;
  img.loading = 'lazy';
  img.className = 'rich-img';
  const a = link(src, '');
  a.className = 'rich-img-link';
  a.append(img);
  return a;
}

/**
 * The nodes of a rich answer, as a DocumentFragment to append where the plain text
 * went. Line breaks stay in the text nodes (the bubbles are white-space: pre-wrap).
 */
export function richText(text) {
  const out = document.createDocumentFragment();
  const source = String(text ?? '');
  let at = 0;
  for (const match of source.matchAll(TOKEN)) {
    const [whole, bang, label, target] = match;
    let node = null;
    let used = whole;
    if (target !== undefined) {
      const url = safeUrl(target);
      if (url) node = bang ? image(url, label) : link(url, label || url);
    } else {
      used = whole.replace(TRAILING, '');
      const url = safeUrl(used);
      if (url) node = link(url, used);
    }
    if (!node) continue; // not a safe link: stays in the text as written
    if (match.index > at) out.append(source.slice(at, match.index));
    out.append(node);
    at = match.index + used.length;
  }
  if (at < source.length) out.append(source.slice(at));
  return out;
}

/** A span of class ``className`` holding the rich answer ``text``. */
export function richSpan(text, className) {
  const span = document.createElement('span');
  if (className) span.className = className;
  span.append(richText(text));
  return span;
}
