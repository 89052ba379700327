// DOM building without HTML strings: every piece of text, whoever wrote it, becomes a text
// node or a property value, never markup. Nothing in the client assigns innerHTML.

type Child = Node | string | number | null | undefined | false;

type Attributes = {
  class?: string;
  // Event handlers: `on: { click: (e) => ... }`.
  on?: { [K in keyof HTMLElementEventMap]?: (event: HTMLElementEventMap[K]) => void };
  // Data attributes: `data: { id: '...' }` sets `data-id`.
  data?: Record<string, string>;
  // Anything else is set as an attribute (`type`, `placeholder`, `aria-label`, ...); `true`
  // sets an empty attribute, `false`/`null`/`undefined` leaves it out.
  [attribute: string]: unknown;
};

/** Creates `<tag>` with attributes and children (strings become text nodes). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes | null = null,
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  if (attributes) {
    for (const [name, value] of Object.entries(attributes)) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'on') {
        for (const [event, handler] of Object.entries(value as Record<string, EventListener>)) {
          element.addEventListener(event, handler);
        }
      } else if (name === 'data') {
        for (const [key, item] of Object.entries(value as Record<string, string>)) {
          element.dataset[key] = item;
        }
      } else if (name === 'class') {
        element.className = String(value);
      } else if (name === 'value' && 'value' in element) {
        (element as HTMLInputElement).value = String(value);
      } else {
        element.setAttribute(name, value === true ? '' : String(value));
      }
    }
  }
  append(element, ...children);
  return element;
}

/** Appends children (strings become text nodes). */
export function append(parent: Node, ...children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === 'object' ? child : document.createTextNode(String(child)));
  }
}

/** Replaces all children of `parent`. */
export function replaceChildren(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, ...children);
}

/** `12:04` today, `Mon 12:04` this week, `3 Mar 12:04` before. */
export function formatTime(date: Date): string {
  const now = new Date();
  const time = date.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
  if (date.toDateString() === now.toDateString()) return time;
  const days = (now.getTime() - date.getTime()) / 86_400_000;
  if (days < 6 && days > 0) {
    return `${date.toLocaleDateString(undefined, { weekday: 'short' })} ${time}`;
  }
  return `${date.toLocaleDateString(undefined, { day: 'numeric', month: 'short' })} ${time}`;
}

/** Parses an ISO time, or `undefined` when it is missing or invalid. */
export function parseTime(value: unknown): Date | undefined {
  if (typeof value !== 'string') return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Calls `fn` once calls stop for `ms`. */
export function debounce<A extends unknown[]>(fn: (...args: A) => void, ms: number) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return (...args: A) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
