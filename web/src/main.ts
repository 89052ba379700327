// Herald's web client: sign-in, then chat rooms, the task board and the notification feed
// over one WebSocket (`/connection/websocket`, the npm centrifuge SDK).
//
// Views are plain DOM built with `h()` (dom.ts): user text is only ever set as text.

import './style.css';

import { Centrifuge, UnauthorizedError } from 'centrifuge';

import { ApiError, Auth, Session } from './api';
import { ChatView, ROOM_PATTERN } from './chat';
import { h, replaceChildren } from './dom';
import { Feed } from './feed';
import { isTaskEvent, TaskBoard } from './tasks';
import { ConnectionIndicator, messageOf, noticeArea, notify } from './ui';
import { Users } from './users';

const root = document.getElementById('app')!;
const auth = new Auth();
let stopApp: (() => void) | null = null;

auth.onSignedOut = () => {
  stopApp?.();
  stopApp = null;
  showSignIn('You were signed out. Please sign in again.');
};

function start() {
  document.body.append(noticeArea());
  const session = auth.current;
  if (session) showApp(session);
  else showSignIn();
}

// --- sign-in ------------------------------------------------------------------------------

function showSignIn(message = '') {
  document.body.append(noticeArea());
  document.title = 'Sign in · Herald';
  const username = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, minlength: 3, maxlength: 32, autofocus: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, minlength: 8, maxlength: 128 });
  const error = h('p', { class: 'form-error', role: 'alert' }, message);
  const signIn = h('button', { type: 'submit', class: 'primary', value: 'signin' }, 'Sign in');
  const signUp = h('button', { type: 'submit', value: 'signup' }, 'Create account');
  const form = h(
    'form',
    {
      class: 'sign-in panel',
      'aria-label': 'Sign in',
      on: {
        submit: async (event) => {
          event.preventDefault();
          const action = ((event as SubmitEvent).submitter as HTMLButtonElement | null)?.value ?? 'signin';
          error.textContent = '';
          signIn.disabled = signUp.disabled = true;
          try {
            if (action === 'signup') await auth.register(username.value.trim(), password.value);
            const session = await auth.signIn(username.value.trim(), password.value);
            showApp(session);
          } catch (err) {
            error.textContent = describeAuthError(err, action === 'signup');
            signIn.disabled = signUp.disabled = false;
          }
        },
      },
    },
    h('h1', { class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'Herald'),
    h('p', { class: 'tagline' }, 'Chat rooms, a live task board and notifications.'),
    h('label', null, 'Username', username),
    h('label', null, 'Password', password),
    error,
    h('div', { class: 'actions' }, signIn, signUp),
    h('p', { class: 'hint' }, 'New here? Pick a username (3–32 letters, digits, - or _) and a password of at least 8 characters, then Create account.'),
  );
  replaceChildren(root, h('main', { class: 'sign-in-page' }, form));
  username.focus();
}

function describeAuthError(error: unknown, signingUp: boolean): string {
  if (error instanceof ApiError) {
    if (error.code === 'conflict') return 'That username is taken. Pick another one, or sign in.';
    if (error.status === 401 && !signingUp) return 'Wrong username or password.';
    if (error.code === 'rate_limited') return 'Too many attempts. Wait a minute and try again.';
    const fields = Object.entries(error.details ?? {}).map(([field, why]) => `${field}: ${String(why).replace(/_/g, ' ')}`);
    return fields.length ? `${error.message} (${fields.join(', ')})` : error.message;
  }
  return messageOf(error);
}

// --- the signed-in app --------------------------------------------------------------------

type Route = { view: 'chat'; room: string } | { view: 'tasks' } | { view: 'notifications' };

function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/');
  if (parts[0] === 'tasks') return { view: 'tasks' };
  if (parts[0] === 'notifications') return { view: 'notifications' };
  let room = 'lobby';
  try {
    const named = decodeURIComponent(parts[1] ?? '');
    if (ROOM_PATTERN.test(named)) room = named;
  } catch {
    // malformed escape: the lobby
  }
  return { view: 'chat', room };
}

function showApp(session: Session) {
  stopApp?.();
  const indicator = new ConnectionIndicator();
  const users = new Users(auth);
  const wsUrl = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/connection/websocket`;
  const client = new Centrifuge(wsUrl, {
    token: session.accessToken,
    name: 'herald-web',
    getToken: async () => {
      try {
        return await auth.accessToken(true);
      } catch (error) {
        // The session is over (refresh refused): stop reconnecting.
        if (error instanceof ApiError && error.status !== 0 && error.status < 500) throw new UnauthorizedError(error.message);
        throw error;
      }
    },
  });

  let route = parseRoute(location.hash);
  const chat = new ChatView(client, session, users);
  const board = new TaskBoard(auth, session, users);
  const feed = new Feed(session);
  const ownChannel = `notifications#${session.userId}`;

  // Connection state → indicator. "Reconnecting" once it has been connected before.
  let everConnected = false;
  client.on('connecting', () => indicator.set(everConnected ? 'reconnecting' : 'connecting'));
  client.on('connected', () => {
    everConnected = true;
    indicator.set('connected');
  });
  client.on('disconnected', (ctx) => {
    indicator.set('offline');
    if (ctx.code !== 0) notify(`Disconnected: ${ctx.reason}`, 'error');
  });

  // The notification channel is a server-side subscription: its events come on the client.
  client.on('subscribed', (ctx) => {
    if (ctx.channel !== ownChannel) return;
    feed.setEpoch(ctx.channel, ctx.streamPosition?.epoch);
    if (!(ctx.wasRecovering && ctx.recovered)) void loadHistory(ctx.channel, (channel, opts) => client.history(channel, opts));
  });
  client.on('publication', (ctx) => {
    if (ctx.channel !== ownChannel) return;
    if (isTaskEvent(ctx.data)) {
      users.learn(ctx.data.actor?.id, ctx.data.actor?.name);
      if (route.view !== 'notifications') notify(ctx.data.text || 'New notification');
    }
    feed.add(ctx.channel, ctx);
  });

  // The board: everyone's task changes.
  const tasksSub = client.newSubscription('tasks', { recoverable: true, positioned: true });
  tasksSub.on('subscribed', (ctx) => {
    feed.setEpoch('tasks', ctx.streamPosition?.epoch);
    if (!(ctx.wasRecovering && ctx.recovered)) {
      void board.reload();
      void loadHistory('tasks', (_channel, opts) => tasksSub.history(opts));
    }
  });
  tasksSub.on('publication', (ctx) => {
    if (!isTaskEvent(ctx.data)) return;
    board.apply(ctx.data);
    feed.add('tasks', ctx);
  });
  tasksSub.on('error', (ctx) => notify(`Task board: ${ctx.error.message}`, 'error'));

  async function loadHistory(
    channel: string,
    read: (channel: string, opts: { limit: number; reverse: boolean }) => Promise<{ publications: { data: unknown; offset?: number }[]; epoch: string }>,
  ) {
    try {
      const history = await read(channel, { limit: 50, reverse: true });
      feed.setEpoch(channel, history.epoch);
      for (const publication of history.publications) feed.add(channel, publication);
    } catch (error) {
      notify(`Could not load notifications: ${messageOf(error)}`, 'error');
    }
  }

  // Shell: top bar, navigation, the three views.
  const badge = h('span', { class: 'badge', 'data-testid': 'unread', 'aria-label': '0 unread', hidden: true });
  let unread = 0;
  const setTitle = () => {
    document.title = `${unread ? `(${unread}) ` : ''}${titleFor(route)} · Herald`;
  };
  feed.onUnread = (count) => {
    unread = count;
    badge.hidden = count === 0;
    badge.textContent = count > 99 ? '99+' : String(count);
    badge.setAttribute('aria-label', `${count} unread`);
    setTitle();
  };
  feed.onOpen = (taskId) => {
    location.hash = '#/tasks';
    requestAnimationFrame(() => board.show(taskId));
  };
  const links = {
    chat: h('a', { href: '#/chat/lobby', class: 'tab' }, 'Chat'),
    tasks: h('a', { href: '#/tasks', class: 'tab' }, 'Tasks'),
    notifications: h('a', { href: '#/notifications', class: 'tab', 'aria-label': 'Notifications' }, h('span', null, 'Notifications'), badge),
  };
  const signOut = h('button', { type: 'button', class: 'link', on: { click: () => void auth.signOut() } }, 'Sign out');
  const view = h('main', { class: 'view' });
  replaceChildren(
    root,
    h(
      'header',
      { class: 'topbar' },
      h('a', { href: '#/chat/lobby', class: 'brand' }, h('span', { class: 'logo', 'aria-hidden': 'true' }), 'Herald'),
      h('nav', { class: 'tabs', 'aria-label': 'Sections' }, links.chat, links.tasks, links.notifications),
      // Notices take their own place in the bar, so they never cover a control.
      noticeArea(),
      h('div', { class: 'me' }, indicator.element, h('span', { class: 'username', 'data-testid': 'me' }, session.username), signOut),
    ),
    view,
  );

  function titleFor(r: Route) {
    return r.view === 'chat' ? `#${r.room}` : r.view === 'tasks' ? 'Tasks' : 'Notifications';
  }
  function render() {
    route = parseRoute(location.hash);
    for (const [name, link] of Object.entries(links)) {
      const active = name === route.view;
      link.classList.toggle('active', active);
      if (active) link.setAttribute('aria-current', 'page');
      else link.removeAttribute('aria-current');
    }
    if (route.view === 'chat') {
      links.chat.href = `#/chat/${encodeURIComponent(route.room)}`;
      chat.enter(route.room);
      replaceChildren(view, chat.element);
      chat.focus();
    } else if (route.view === 'tasks') {
      replaceChildren(view, board.element);
    } else {
      replaceChildren(view, feed.element);
    }
    feed.setVisible(route.view === 'notifications');
    setTitle();
  }
  const onHash = () => render();
  const onVisible = () => feed.setVisible(route.view === 'notifications' && document.visibilityState === 'visible');
  window.addEventListener('hashchange', onHash);
  document.addEventListener('visibilitychange', onVisible);
  if (!location.hash) history.replaceState(null, '', '#/chat/lobby');
  render();
  void users.load(true);
  tasksSub.subscribe();
  client.connect();

  stopApp = () => {
    window.removeEventListener('hashchange', onHash);
    document.removeEventListener('visibilitychange', onVisible);
    chat.leave();
    client.removeAllListeners();
    client.disconnect();
  };
}

start();
