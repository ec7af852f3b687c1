import type { V1Container } from '@kubernetes/client-node';
import { expect } from 'chai';
import { NodeletError } from '../../lib/errors.ts';
import { envMapping, expand, expandContainerCommandAndArgs, expandSubPathExpr } from '../../agent/pod/expand.ts';

// The context of upstream's expansion tests; every expectation below was
// checked against upstream's Expand (v1.37.2) run on the same input.
const vars: Record<string, string> = { VAR_A: 'A', VAR_B: 'B', VAR_C: 'C', VAR_REF: '$(VAR_A)', VAR_EMPTY: '' };
const mapping = (name: string): string | undefined => vars[name];

describe('pod/expand: $(VAR) expansion', () => {
  const cases: [name: string, input: string, want: string][] = [
    ['whole string', '$(VAR_A)', 'A'],
    ['in the middle', '___$(VAR_B)___', '___B___'],
    ['twice with a dash', '$(VAR_A)-$(VAR_A)', 'A-A'],
    ['followed by text', '$(VAR_A)-1', 'A-1'],
    ['three', '$(VAR_A)_$(VAR_B)_$(VAR_C)', 'A_B_C'],
    ['adjacent', '$(VAR_A)$(VAR_A)', 'AA'],
    ['escaped reference', '$$(VAR_B)_$(VAR_A)', '$(VAR_B)_A'],
    ['two escaped references', '$$(VAR_A)$$(VAR_B)', '$(VAR_A)$(VAR_B)'],
    ['escaped $ before a name without parens', 'f000-$$VAR_A', 'f000-$VAR_A'],
    ['backslash is not an escape', 'foo\\$(VAR_C)bar', 'foo\\Cbar'],
    ['two backslashes', 'foo\\\\$(VAR_C)bar', 'foo\\\\Cbar'],
    ['values are not expanded again', '$(VAR_REF)', '$(VAR_A)'],
    ['empty value', '$(VAR_EMPTY)', ''],
    ['empty value in text', 'x$(VAR_EMPTY)y', 'xy'],
    ['unknown stays literal', '$(VAR_DNE)', '$(VAR_DNE)'],
    ['unknown between known', '$(VAR_A)$(VAR_DNE)$(VAR_B)', 'A$(VAR_DNE)B'],
    ['unterminated', '$(VAR_A', '$(VAR_A'],
    ['unterminated after a reference', '$(VAR_A)$(VAR_B', 'A$(VAR_B'],
    ['unterminated swallowing a later reference', '$(VAR_A$(VAR_B)', '$(VAR_A$(VAR_B)'],
    // scanning goes on after an unterminated "$(": a later "$$" is still an escape
    ['unterminated, then an escape', '$(VAR_A$$', '$(VAR_A$'],
    ['no parens', '$VAR_A', '$VAR_A'],
    ['lone open', '$(', '$('],
    ['empty name', '$()', '$()'],
    ['lone $', '$', '$'],
    ['trailing $', '$(VAR_A)$', 'A$'],
    ['$$', '$$', '$'],
    ['$$$', '$$$', '$$'],
    ['$$$$', '$$$$', '$$'],
    ['escape then reference', '$$$(VAR_A)', '$A'],
    ['two escapes then reference', '$$$$$(VAR_A)', '$$A'],
    ['escaped open', '$$(', '$('],
    ['nested', '$($(VAR_A))', '$($(VAR_A))'],
    ['name of dollars', '$($$)', '$($$)'],
    ['spaces are part of the name', '$( VAR_A )', '$( VAR_A )'],
    ['$ before a multibyte character', '$ü$(VAR_A)', '$üA'],
    ['$ before an astral character', '$😀$(VAR_B)', '$😀B'],
    ['$ before $ after a letter', '$x$$(VAR_A)', '$x$(VAR_A)'],
    ['newlines kept', '$(VAR_A)\n$(VAR_B)', 'A\nB'],
    ['no references', 'plain text', 'plain text'],
    ['empty input', '', ''],
  ];
  for (const [name, input, want] of cases) {
    it(`${name}: ${JSON.stringify(input)} -> ${JSON.stringify(want)}`, () => expect(expand(input, mapping)).to.equal(want));
  }
});

describe('pod/expand: container command and args', () => {
  const env = [
    { key: 'GREETING', value: 'hello' },
    { key: 'WHO', value: 'world' },
    { key: 'WHO', value: 'nodelet' }, // a later duplicate wins
  ];
  const cases: { name: string; container: V1Container; want: { command: string[]; args: string[] } }[] = [
    { name: 'no command, no args', container: { name: 'c' }, want: { command: [], args: [] } },
    {
      name: 'command and args expanded',
      container: { name: 'c', command: ['/bin/echo', '$(GREETING)'], args: ['$(WHO)', '$$(WHO)', '$(MISSING)'] },
      want: { command: ['/bin/echo', 'hello'], args: ['nodelet', '$(WHO)', '$(MISSING)'] },
    },
    {
      name: 'only args',
      container: { name: 'c', args: ['sh', '-c', 'echo $(GREETING) $HOME'] },
      want: { command: [], args: ['sh', '-c', 'echo hello $HOME'] },
    },
  ];
  for (const c of cases) {
    it(c.name, () => expect(expandContainerCommandAndArgs(c.container, env)).to.deep.equal(c.want));
  }

  it('does not change the container', () => {
    const container: V1Container = { name: 'c', command: ['$(GREETING)'] };
    expandContainerCommandAndArgs(container, env);
    expect(container.command).to.deep.equal(['$(GREETING)']);
  });

  it('envMapping answers undefined for unknown names', () => {
    const m = envMapping(env);
    expect(m('GREETING')).to.equal('hello');
    expect(m('NOPE')).to.equal(undefined);
  });
});

describe('pod/expand: volume subPathExpr', () => {
  const env = [
    { key: 'POD_NAME', value: 'web-0' },
    { key: 'NS', value: 'default' },
    { key: 'EMPTY', value: '' },
  ];
  const ok: [string, string][] = [
    ['$(POD_NAME)', 'web-0'],
    ['logs/$(NS)/$(POD_NAME)', 'logs/default/web-0'],
    ['$$(POD_NAME)', '$(POD_NAME)'],
    ['plain', 'plain'],
    ['a$b', 'a$b'],
    ['$(NS)-$(POD_NAME', 'default-$(POD_NAME'],
    ['$(POD_NAME$$x', '$(POD_NAME$x'],
  ];
  for (const [input, want] of ok) {
    it(`${input} -> ${want}`, () => expect(expandSubPathExpr(input, env)).to.equal(want));
  }

  const bad: [string, string][] = [
    ['$(NOPE)', 'missing value for NOPE'],
    ['$(EMPTY)', 'missing value for EMPTY'],
    ['$(Z)/$(A)/$(Z)', 'missing value for A, Z'],
  ];
  for (const [input, msg] of bad) {
    it(`${input} fails: ${msg}`, () => {
      let err: unknown;
      try {
        expandSubPathExpr(input, env);
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(NodeletError);
      expect((err as NodeletError).code).to.equal('CreateContainerConfigError');
      expect((err as NodeletError).message).to.equal(msg);
    });
  }
});
