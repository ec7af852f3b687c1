import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { expect } from 'chai';
import { NodeletError } from '../../lib/errors.ts';
import {
  containerResourceValue,
  DOWNWARD_API_INVALID,
  extractFieldPath,
  formatMap,
  goQuote,
  isZeroOrMissing,
  labelKeyErrors,
  splitSubscript,
} from '../../agent/pod/fieldpath.ts';

describe('pod/fieldpath: Go quoting and FormatMap', () => {
  it('quotes like Go strconv.Quote', () => {
    expect(goQuote('plain')).to.equal('"plain"');
    expect(goQuote('a"b\\c\nd\te')).to.equal('"a\\"b\\\\c\\nd\\te"');
    expect(goQuote('\x01é')).to.equal('"\\x01é"');
    expect(goQuote('\x85')).to.equal('"\\u0085"');
    expect(goQuote('\x07\b\f\r\v')).to.equal('"\\a\\b\\f\\r\\v"');
  });
  it('formats maps sorted, one key="value" per line, no trailing newline', () => {
    expect(formatMap({ zone: 'b', app: 'web' })).to.equal('app="web"\nzone="b"');
    expect(formatMap(undefined)).to.equal('');
    expect(formatMap({})).to.equal('');
  });
  it('formatMap quotes like Go (control characters, DEL, unicode kept)', () => {
    expect(formatMap({ b: 'tab\there', a: 'bell\x07 del\x7f', c: 'é ü', d: '' })).to.equal('a="bell\\a del\\x7f"\nb="tab\\there"\nc="é ü"\nd=""');
  });
});

describe('pod/fieldpath: subscripted paths (SplitMaybeSubscriptedPath)', () => {
  const cases: [string, [string, string] | undefined][] = [
    ["metadata.labels['app']", ['metadata.labels', 'app']],
    ["metadata.annotations['a.io/x']", ['metadata.annotations', 'a.io/x']],
    ['metadata.labels', undefined],
    // an empty path before the subscript is not a subscripted path
    ["['app']", undefined],
    ["[']", undefined],
    ["metadata.labels['']", ['metadata.labels', '']],
    ["metadata.labels['a']['b']", ['metadata.labels', "a']['b"]],
  ];
  for (const [input, want] of cases) it(`${input} -> ${JSON.stringify(want)}`, () => expect(splitSubscript(input)).to.deep.equal(want));
});

describe('pod/fieldpath: label keys (IsQualifiedName)', () => {
  const keyCases: [string, boolean][] = [
    ['app', true],
    ['example.com/app', true],
    ['App.Name-1_x', true],
    ['a/b/c', false],
    ['/app', false],
    ['Example.com/app', false],
    ['-app', false],
    ['x'.repeat(63), true],
    ['x'.repeat(64), false],
    ['', false],
  ];
  for (const [k, valid] of keyCases) {
    it(`label key ${JSON.stringify(k.length > 20 ? `${k.slice(0, 5)}...(${k.length})` : k)} is ${valid ? 'valid' : 'invalid'}`, () =>
      expect(labelKeyErrors(k).length === 0).to.equal(valid));
  }
});

describe('pod/fieldpath: metadata fields (ExtractFieldPathAsString)', () => {
  const p: V1Pod = {
    metadata: { name: 'web', namespace: 'ns1', uid: 'uid-1', labels: { app: 'web', tier: 'fe' }, annotations: { 'a.io/x': 'y', 'a.io/Mixed': 'm' } },
    spec: { nodeName: 'node-a', containers: [{ name: 'app', image: 'img' }] },
  };
  const cases: [string, string][] = [
    ['metadata.name', 'web'],
    ['metadata.namespace', 'ns1'],
    ['metadata.uid', 'uid-1'],
    ['metadata.labels', 'app="web"\ntier="fe"'],
    ['metadata.annotations', 'a.io/Mixed="m"\na.io/x="y"'],
    ["metadata.labels['tier']", 'fe'],
    ["metadata.annotations['a.io/x']", 'y'],
    // annotation keys are validated lowercased but looked up as written
    ["metadata.annotations['a.io/Mixed']", 'm'],
    ["metadata.labels['missing']", ''],
  ];
  for (const [f, want] of cases) it(`${f} -> ${JSON.stringify(want)}`, () => expect(extractFieldPath(p, f)).to.equal(want));

  it('a pod without metadata gives empty values', () => {
    expect(extractFieldPath({}, 'metadata.name')).to.equal('');
    expect(extractFieldPath({}, 'metadata.labels')).to.equal('');
  });

  const errors: [string, string | RegExp][] = [
    // kubelet-only fields are not here: env.ts answers them, volumes cannot project them
    ['spec.nodeName', 'unsupported fieldPath: spec.nodeName'],
    ['status.podIP', 'unsupported fieldPath: status.podIP'],
    ["metadata.name['x']", `fieldPath "metadata.name['x']" does not support subscript`],
    ["metadata.labels['bad key']", /^invalid key subscript in metadata.labels\['bad key'\]: name part must consist of/],
    ["metadata.labels['Example.com/x']", /^invalid key subscript in metadata.labels\['Example.com\/x'\]: prefix part a lowercase RFC 1123 subdomain/],
  ];
  for (const [f, msg] of errors) {
    it(`${f} fails with upstream text`, () => {
      expect(() => extractFieldPath(p, f))
        .to.throw(NodeletError, msg)
        .with.property('code', DOWNWARD_API_INVALID);
    });
  }
});

describe('pod/fieldpath: container resources (ExtractContainerResourceValue)', () => {
  const app: V1Container = { name: 'app', resources: { limits: { cpu: '1500m', memory: '256Mi' }, requests: { cpu: '250m', memory: '64Mi' } } };
  const side: V1Container = { name: 'side' };
  const p: V1Pod = { spec: { containers: [app, side], initContainers: [{ name: 'init', resources: { requests: { cpu: '100m' } } }] } };
  const alloc = { cpu: '4', memory: '8Gi' };

  it('a named container wins over the given one; an init container can be named', () => {
    expect(containerResourceValue({ resource: 'limits.cpu', divisor: '1m', containerName: 'app' }, p, side, alloc)).to.equal('1500');
    expect(containerResourceValue({ resource: 'requests.cpu', divisor: '1m', containerName: 'init' }, p, undefined, alloc)).to.equal('100');
  });
  it('without a name, the given container', () => {
    expect(containerResourceValue({ resource: 'requests.memory', divisor: '1Mi' }, p, app, alloc)).to.equal('64');
  });
  it('a missing or zero limit takes allocatable; a missing request stays zero', () => {
    expect(containerResourceValue({ resource: 'limits.cpu' }, p, side, alloc)).to.equal('4');
    expect(containerResourceValue({ resource: 'limits.memory', divisor: '1Gi' }, p, { name: 'z', resources: { limits: { memory: '0' } } }, alloc)).to.equal('8');
    expect(containerResourceValue({ resource: 'requests.cpu' }, p, side, alloc)).to.equal('0');
    expect(containerResourceValue({ resource: 'limits.cpu' }, p, side, {})).to.equal('0');
  });
  it('a zero divisor counts as 1', () => {
    expect(containerResourceValue({ resource: 'limits.cpu', divisor: '0m' }, p, app, alloc)).to.equal('2');
  });

  const errors: [string, V1Container | undefined, string | undefined, string][] = [
    ['limits.cpu', undefined, undefined, 'container  not found'],
    ['limits.cpu', app, 'nope', 'container nope not found'],
    ['limits.gpu', app, undefined, 'unsupported container resource : limits.gpu'],
    ['requests.cpu', { name: 'q', resources: { requests: { cpu: 'lots' } } }, undefined, 'invalid quantity "lots" for requests.cpu'],
  ];
  for (const [resource, c, containerName, msg] of errors) {
    it(`${resource}${containerName ? ` of ${containerName}` : ''} fails: ${msg}`, () => {
      expect(() => containerResourceValue({ resource, ...(containerName ? { containerName } : {}) }, p, c, alloc))
        .to.throw(NodeletError, msg)
        .with.property('code', DOWNWARD_API_INVALID);
    });
  }
  it('isZeroOrMissing compares values, not text', () => {
    expect(isZeroOrMissing(undefined)).to.equal(true);
    expect(isZeroOrMissing('0')).to.equal(true);
    expect(isZeroOrMissing('0m')).to.equal(true);
    expect(isZeroOrMissing('1m')).to.equal(false);
  });
});
