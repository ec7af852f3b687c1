// Pull-secret credentials matched by registry, as the kubelet's keyring.
import { expect } from 'chai';
import { authForImage } from '../../agent/pod/images.ts';

const secret = (auths: object) => ({ data: { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths })).toString('base64') } });

describe('authForImage', () => {
  it('picks the credentials of the image registry', () => {
    const s = [secret({ 'registry.test:5000': { username: 'u', password: 'p' } }), secret({ 'https://index.docker.io/v1/': { auth: 'dTpw' } })];
    expect(authForImage('registry.test:5000/app:1', s)).to.deep.equal({ serverAddress: 'registry.test:5000', username: 'u', password: 'p' });
    expect(authForImage('busybox', s)).to.deep.equal({ serverAddress: 'https://index.docker.io/v1/', auth: 'dTpw' });
    expect(authForImage('other.test/app', s)).to.equal(undefined);
  });
  it('skips a malformed secret', () => {
    expect(authForImage('busybox', [{ data: { '.dockerconfigjson': Buffer.from('{nope').toString('base64') } }])).to.equal(undefined);
  });
});
