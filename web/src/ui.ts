// Small shared pieces of the interface: notices (toasts) and the connection indicator.

import { h, replaceChildren } from './dom';

const notices = h('div', { class: 'notices', role: 'status', 'aria-live': 'polite' });

/** The element holding notices; mounted once by the app. */
export function noticeArea(): HTMLElement {
  return notices;
}

/** Shows a short message for a few seconds (`error` ones stay a little longer). */
export function notify(text: string, kind: 'info' | 'error' = 'info') {
  const item = h('div', { class: `notice ${kind}` }, text);
  notices.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** A readable message for anything thrown. */
export function messageOf(error: unknown): string {
  if (error && typeof error === 'object' && 'message' in error && typeof error.message === 'string') return error.message;
  return String(error);
}

export type ConnectionState = 'connecting' | 'connected' | 'reconnecting' | 'offline';

const LABELS: Record<ConnectionState, string> = {
  connecting: 'Connecting…',
  connected: 'Live',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
};

/** The pill in the top bar showing the WebSocket's state. */
export class ConnectionIndicator {
  readonly element = h('span', { class: 'connection', 'data-testid': 'connection', role: 'status', 'aria-live': 'polite' });

  constructor() {
    this.set('connecting');
  }

  set(state: ConnectionState) {
    this.element.dataset.state = state;
    this.element.title = state === 'connected' ? 'Connected: updates arrive live' : LABELS[state];
    replaceChildren(this.element, h('span', { class: 'dot', 'aria-hidden': 'true' }), h('span', { class: 'label' }, LABELS[state]));
  }
}
