// Who is who: user ids to names (from /auth/users, publication info and event actors), and
// the picker that finds a user by name.

import { Auth, UserSummary } from './api';
import { debounce, h, replaceChildren } from './dom';

export class Users {
  private names = new Map<string, string>();
  private listeners = new Set<() => void>();
  private lastLookup = 0;

  constructor(private auth: Auth) {}

  /** Remembers a name seen in a publication or an event. */
  learn(id: string | undefined | null, name: string | undefined | null) {
    if (!id || !name || this.names.get(id) === name) return;
    this.names.set(id, name);
    this.changed();
  }

  /** The name of `id`; unknown ids trigger a (rate-limited) reload of the directory. */
  nameOf(id: string | null | undefined): string {
    if (!id) return '';
    const name = this.names.get(id);
    if (name) return name;
    void this.load();
    return 'someone';
  }

  onChange(listener: () => void) {
    this.listeners.add(listener);
  }

  /** Loads the first page of the directory (enough to name everyone in a small team). */
  async load(force = false) {
    if (!force && Date.now() - this.lastLookup < 5_000) return;
    this.lastLookup = Date.now();
    try {
      let changed = false;
      for (const user of await this.auth.searchUsers('', 100)) {
        if (this.names.get(user.id) !== user.username) {
          this.names.set(user.id, user.username);
          changed = true;
        }
      }
      if (changed) this.changed();
    } catch {
      // names stay "someone" until the next look-up
    }
  }

  async search(prefix: string): Promise<UserSummary[]> {
    const found = await this.auth.searchUsers(prefix, 8);
    for (const user of found) this.learn(user.id, user.username);
    return found;
  }

  private changed() {
    for (const listener of this.listeners) listener();
  }
}

/**
 * A text box that finds users by name prefix and offers them as buttons; `onPick` gets the
 * chosen user, or `null` for "nobody" when `allowNobody`.
 */
export function userPicker(
  users: Users,
  options: { placeholder: string; label: string; allowNobody?: boolean; onPick: (user: UserSummary | null) => void },
): { element: HTMLElement; input: HTMLInputElement; clear: () => void } {
  const results = h('ul', { class: 'picker-results', role: 'listbox', 'aria-label': `${options.label} suggestions` });
  const input = h('input', {
    type: 'search',
    placeholder: options.placeholder,
    'aria-label': options.label,
    autocomplete: 'off',
    maxlength: 32,
  });
  let generation = 0;
  const show = (found: UserSummary[]) => {
    const items = found.map((user) =>
      h('li', null, h('button', { type: 'button', class: 'picker-option', data: { userId: user.id }, on: { click: () => pick(user) } }, user.username)),
    );
    if (options.allowNobody) {
      items.push(h('li', null, h('button', { type: 'button', class: 'picker-option nobody', on: { click: () => pick(null) } }, 'Nobody')));
    }
    if (found.length === 0 && input.value.trim()) items.unshift(h('li', { class: 'picker-empty' }, 'No user with that name'));
    replaceChildren(results, ...items);
  };
  const pick = (user: UserSummary | null) => {
    replaceChildren(results);
    input.value = user ? user.username : '';
    options.onPick(user);
  };
  const lookup = debounce(async () => {
    const prefix = input.value.trim();
    const mine = ++generation;
    if (!prefix) {
      replaceChildren(results);
      return;
    }
    try {
      const found = await users.search(prefix);
      if (mine === generation) show(found);
    } catch {
      if (mine === generation) replaceChildren(results, h('li', { class: 'picker-empty' }, 'Search failed'));
    }
  }, 150);
  input.addEventListener('input', lookup);
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') replaceChildren(results);
    if (event.key === 'Enter') {
      event.preventDefault();
      const first = results.querySelector<HTMLButtonElement>('button.picker-option');
      first?.click();
    }
  });
  const element = h('div', { class: 'picker' }, input, results);
  return {
    element,
    input,
    clear: () => {
      input.value = '';
      replaceChildren(results);
    },
  };
}
