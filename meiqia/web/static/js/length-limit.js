// A text box's length against what the server takes (a chat message, a ticket's content
// or reply: 5,000 characters). No maxlength on these boxes: a browser cuts a longer paste
// without a word and the end of it ("…结尾的订单号A123") is lost. Instead a note under the
// box counts near the limit and, over it, says by how much; the caller does not send and
// the text stays in the box to be shortened.

/** What one chat message may hold (messages.MAX_BODY; the widget gets it in its boot). */
export const MAX_BODY = 5000;

/** The keys of the note in the widget and in the agents' pages. */
export const WIDGET_KEYS = { count: 'widget.len.count', over: 'widget.len.over' };
export const UI_KEYS = { count: 'ui.len.count', over: 'ui.len.over' };

/** Characters as the server counts them (Python's len of the trimmed text: code points). */
export function charCount(text) {
  return [...String(text ?? '').trim()].length;
}

/**
 * Watch ``input`` and write the count into ``note`` (hidden below 90 % of ``max``).
 * ``say(key, values)`` is the page's translator; ``keys`` its two keys,
 * ``{count, over}`` (``WIDGET_KEYS`` in the widget, ``UI_KEYS`` in the agents'
 * pages), written out whole so the pages' key checks see them.
 * Returns ``fits()``: true when the text may be sent; false shows the refusal.
 */
export function lengthLimit(input, note, max, say, keys) {
  const show = () => {
    const n = charCount(input.value);
    const over = n > max;
    note.hidden = n < max * 0.9;
    note.textContent = over ? say(keys.over, { n, max, extra: n - max }) : say(keys.count, { n, max });
    note.classList.toggle('over', over);
    if (over) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
    return !over;
  };
  note.setAttribute('aria-live', 'polite');
  input.addEventListener('input', show);
  return { fits: show, reset: show };
}
