import { isSluiceError, type SluiceError } from '@sluice/core';
import { describe, expect, it } from 'vitest';
import { storageLabels, storageSections, storageTables, storageToHtml } from '../src/storage.js';

/** A guidelines page as Confluence stores it (one element a line, as the source editor shows). */
const GUIDELINES = [
  '<ac:structured-macro ac:name="toc" ac:schema-version="1" ac:macro-id="a1b2"><ac:parameter ac:name="maxLevel">2</ac:parameter></ac:structured-macro>',
  '<p>Read this page before you start.</p>',
  '<h1>Guidelines</h1>',
  '<p>Annotate every&nbsp;mention.</p>',
  '<h2>Entities</h2>',
  '<h3>Persons</h3>',
  '<p>People&rsquo;s   names, <strong>not</strong> titles &amp; roles.</p>',
  '<ac:structured-macro ac:name="info" ac:schema-version="1"><ac:parameter ac:name="title">Tip</ac:parameter><ac:rich-text-body><p>Include middle names.</p><p>Skip <em>honorifics</em>.</p></ac:rich-text-body></ac:structured-macro>',
  '<h3>Unused</h3>',
  '<h2>Examples</h2>',
  '<ac:structured-macro ac:name="code" ac:schema-version="1"><ac:parameter ac:name="language">xml</ac:parameter><ac:plain-text-body><![CDATA[<person id="1">Ada & Bob</person>',
  '  <org>ACME &amp; Co</org>]]></ac:plain-text-body></ac:structured-macro>',
  '<ul><li>First</li><li>Second<ul><li>See <ac:link><ri:page ri:content-title="Style guide" ri:space-key="DOC" /></ac:link></li></ul></li></ul>',
  '<ac:structured-macro ac:name="expand" ac:schema-version="1"><ac:parameter ac:name="title">More</ac:parameter><ac:rich-text-body><p>Hidden details.</p></ac:rich-text-body></ac:structured-macro>',
].join('\n');

const CODE_TEXT = '<person id="1">Ada & Bob</person>\n  <org>ACME &amp; Co</org>';
const CODE_HTML =
  '<pre><code>&lt;person id="1"&gt;Ada &amp; Bob&lt;/person&gt;\n  &lt;org&gt;ACME &amp;amp; Co&lt;/org&gt;</code></pre>';

describe('storageSections', () => {
  it("'page' gives the whole text with headings as lines", () => {
    const [page, ...rest] = storageSections(GUIDELINES, 'page');
    expect(rest).toEqual([]);
    expect(page?.headings).toEqual([]);
    expect(page?.text).toBe(
      [
        'Read this page before you start.',
        '',
        'Guidelines',
        '',
        'Annotate every mention.',
        '',
        'Entities',
        '',
        'Persons',
        '',
        'People’s names, not titles & roles.',
        '',
        'Include middle names.',
        '',
        'Skip honorifics.',
        '',
        'Unused',
        '',
        'Examples',
        '',
        CODE_TEXT,
        '',
        '- First',
        '- Second',
        '  - See Style guide',
        '',
        'Hidden details.',
      ].join('\n'),
    );
  });

  it("'section' gives one piece per heading with its path", () => {
    const sections = storageSections(GUIDELINES, 'section');
    expect(sections.map((s) => [s.headings, s.text])).toEqual([
      [[], 'Read this page before you start.'],
      [['Guidelines'], 'Annotate every mention.'],
      [
        ['Guidelines', 'Entities', 'Persons'],
        'People’s names, not titles & roles.\n\nInclude middle names.\n\nSkip honorifics.',
      ],
      [
        ['Guidelines', 'Examples'],
        `${CODE_TEXT}\n\n- First\n- Second\n  - See Style guide\n\nHidden details.`,
      ],
    ]);
    expect(sections[2]?.html).toBe(
      '<p>People’s   names, <strong>not</strong> titles &amp; roles.</p>' +
        '<div class="confluence-info"><p>Include middle names.</p><p>Skip <em>honorifics</em>.</p></div>',
    );
  });

  it("'paragraph' gives one piece per block: paragraph, panel, code block, whole list", () => {
    const pieces = storageSections(GUIDELINES, 'paragraph');
    expect(pieces.map((p) => [p.headings.join(' > '), p.text])).toEqual([
      ['', 'Read this page before you start.'],
      ['Guidelines', 'Annotate every mention.'],
      ['Guidelines > Entities > Persons', 'People’s names, not titles & roles.'],
      ['Guidelines > Entities > Persons', 'Include middle names.\n\nSkip honorifics.'],
      ['Guidelines > Examples', CODE_TEXT],
      ['Guidelines > Examples', '- First\n- Second\n  - See Style guide'],
      ['Guidelines > Examples', 'Hidden details.'],
    ]);
    expect(pieces[4]?.html).toBe(CODE_HTML);
    expect(pieces[6]?.html).toBe('<div class="confluence-expand"><p>Hidden details.</p></div>');
  });

  it('skips headings with nothing under them and empty pages', () => {
    expect(storageSections('<h1>A</h1><h2>B</h2><p>b</p><h2>C</h2>', 'section')).toEqual([
      { text: 'b', html: '<p>b</p>', headings: ['A', 'B'] },
    ]);
    expect(storageSections('<p>&nbsp;</p><ac:structured-macro ac:name="toc" />', 'page')).toEqual(
      [],
    );
    expect(storageSections('', 'paragraph')).toEqual([]);
  });

  it('takes headings out of layouts and keeps bare inline text as a piece', () => {
    const storage =
      '<ac:layout><ac:layout-section ac:type="two_equal">' +
      '<ac:layout-cell><h2>Left</h2><p>one</p></ac:layout-cell>' +
      '<ac:layout-cell><h2>Right</h2>plain <em>text</em><br />next line</ac:layout-cell>' +
      '</ac:layout-section></ac:layout>';
    expect(storageSections(storage, 'paragraph')).toEqual([
      { text: 'one', html: '<p>one</p>', headings: ['Left'] },
      {
        text: 'plain text\nnext line',
        html: 'plain <em>text</em><br>next line',
        headings: ['Right'],
      },
    ]);
  });

  it('flattens tables one row a line, header included, empty cells kept', () => {
    const storage =
      '<table data-layout="default"><colgroup><col style="width: 120px" /></colgroup><tbody>' +
      '<tr><th><p><strong>Label</strong></p></th><th><p>Description</p></th><th>Notes</th></tr>' +
      '<tr><td colspan="1"><p>PERSON</p></td><td><p>A <em>named</em> person.</p><p>Not a role.</p></td><td></td></tr>' +
      '<tr><td></td><td>  </td><td></td></tr>' +
      '<tr><td>ORG</td><td>Companies,&nbsp;agencies</td><td><ul><li>ACME</li></ul></td></tr>' +
      '</tbody></table><p>After.</p>';
    expect(storageSections(storage, 'paragraph').map((p) => p.text)).toEqual([
      'Label | Description | Notes\nPERSON | A named person. Not a role. |\nORG | Companies, agencies | - ACME',
      'After.',
    ]);
    expect(storageTables(storage)).toEqual([
      [
        ['Label', 'Description', 'Notes'],
        ['PERSON', 'A named person. Not a role.', ''],
        ['ORG', 'Companies, agencies', '- ACME'],
      ],
    ]);
  });

  it('numbers ordered lists and indents nested ones', () => {
    const storage =
      '<ol start="3"><li><p>Third</p><ul><li>detail <code>x</code></li><li>more<ol><li>deep</li></ol></li></ul></li><li>Fourth</li><li></li></ol>';
    expect(storageSections(storage, 'page')[0]?.text).toBe(
      '3. Third\n  - detail x\n  - more\n    1. deep\n4. Fourth',
    );
  });

  it('writes task lists, dates, links and drops emoticons, images and placeholders', () => {
    const storage =
      '<ac:placeholder>Type your notes here</ac:placeholder>' +
      '<ac:task-list>' +
      '<ac:task><ac:task-id>1</ac:task-id><ac:task-status>complete</ac:task-status><ac:task-body>Read the guide <ac:emoticon ac:name="tick" ac:emoji-fallback="✅" /></ac:task-body></ac:task>' +
      '<ac:task><ac:task-id>2</ac:task-id><ac:task-status>incomplete</ac:task-status><ac:task-body>Label 50 texts by <time datetime="2024-05-31" /></ac:task-body></ac:task>' +
      '</ac:task-list>' +
      '<p>Ask <ac:link><ri:user ri:account-id="5b10a" /></ac:link>or see ' +
      '<ac:link><ri:page ri:content-title="FAQ" /><ac:plain-text-link-body><![CDATA[the <FAQ>]]></ac:plain-text-link-body></ac:link>, ' +
      '<ac:link><ri:attachment ri:filename="rules.pdf" /></ac:link> and ' +
      '<ac:link><ri:page ri:content-title="Help" /><ac:link-body><strong>help</strong></ac:link-body></ac:link>.' +
      '<ac:image ac:alt="diagram"><ri:attachment ri:filename="flow.png" /></ac:image></p>' +
      '<p><ac:inline-comment-marker ac:ref="c1">Marked</ac:inline-comment-marker> text with <ac:structured-macro ac:name="status"><ac:parameter ac:name="colour">Green</ac:parameter><ac:parameter ac:name="title">DONE</ac:parameter></ac:structured-macro></p>';
    expect(storageSections(storage, 'page')[0]?.text).toBe(
      '[x] Read the guide\n[ ] Label 50 texts by 2024-05-31\n\n' +
        'Ask or see the <FAQ>, rules.pdf and help.\n\nMarked text with DONE',
    );
    expect(storageToHtml(storage)).toBe(
      '<ul><li>☑ Read the guide </li><li>☐ Label 50 texts by <time datetime="2024-05-31">2024-05-31</time></li></ul>' +
        '<p>Ask or see the &lt;FAQ&gt;, rules.pdf and <strong>help</strong>.diagram</p>' +
        '<p>Marked text with <span>DONE</span></p>',
    );
  });
});

describe('storageToHtml', () => {
  it('unwraps macros and keeps standard HTML', () => {
    expect(storageToHtml(GUIDELINES)).toBe(
      [
        '<p>Read this page before you start.</p>',
        '<h1>Guidelines</h1>',
        '<p>Annotate every\u00a0mention.</p>',
        '<h2>Entities</h2>',
        '<h3>Persons</h3>',
        '<p>People’s   names, <strong>not</strong> titles &amp; roles.</p>',
        '<div class="confluence-info"><p>Include middle names.</p><p>Skip <em>honorifics</em>.</p></div>',
        '<h3>Unused</h3>',
        '<h2>Examples</h2>',
        CODE_HTML,
        '<ul><li>First</li><li>Second<ul><li>See Style guide</li></ul></li></ul>',
        '<div class="confluence-expand"><p>Hidden details.</p></div>',
      ].join('\n'),
    );
  });

  it('turns images into <img> with attachmentUrl, else into their alt text', () => {
    const storage =
      '<p><ac:image ac:align="center" ac:width="400" ac:alt="Flow &amp; steps"><ri:attachment ri:filename="flow chart.png" ri:version-at-save="1" /></ac:image></p>' +
      '<p><ac:image ac:alt="logo"><ri:url ri:value="https://example.com/logo.png?size=2&amp;v=1" /></ac:image></p>' +
      '<p><ac:image><ri:attachment ri:filename="other.png"><ri:page ri:content-title="Elsewhere" /></ri:attachment></ac:image>end</p>';
    const attachmentUrl = (name: string) =>
      `https://wiki.example.com/download/attachments/42/${encodeURIComponent(name)}`;
    expect(storageToHtml(storage, { attachmentUrl })).toBe(
      '<p><img src="https://wiki.example.com/download/attachments/42/flow%20chart.png" alt="Flow &amp; steps" width="400"></p>' +
        '<p><img src="https://example.com/logo.png?size=2&amp;v=1" alt="logo"></p>' +
        '<p>end</p>',
    );
    expect(storageToHtml(storage)).toBe(
      '<p>Flow &amp; steps</p><p><img src="https://example.com/logo.png?size=2&amp;v=1" alt="logo"></p><p>end</p>',
    );
    expect(storageSections(storage, 'page', { attachmentUrl })[0]?.text).toBe('end');
  });

  it('drops styles, scripts, unsafe links and unknown macros; flattens layouts', () => {
    const storage =
      '<ac:layout><ac:layout-section ac:type="single"><ac:layout-cell>' +
      '<p style="text-align: center;" class="x"><span style="color: rgb(255,0,0);">Red</span> <a href="https://example.com/a?b=1&amp;c=2" target="_blank">site</a> <a href="javascript:alert(1)">bad</a></p>' +
      '<script>alert(1)</script>' +
      '<ac:structured-macro ac:name="jira"><ac:parameter ac:name="key">DOC-1</ac:parameter></ac:structured-macro>' +
      '<ac:structured-macro ac:name="children" />' +
      '<ac:structured-macro ac:name="noformat"><ac:plain-text-body><![CDATA[raw  <b>]]></ac:plain-text-body></ac:structured-macro>' +
      '<table><tbody><tr><th colspan="2">Head</th></tr><tr><td>a</td><td>b</td></tr></tbody></table>' +
      '</ac:layout-cell></ac:layout-section></ac:layout>';
    expect(storageToHtml(storage)).toBe(
      '<p><span>Red</span> <a href="https://example.com/a?b=1&amp;c=2">site</a> <a>bad</a></p>' +
        '<pre><code>raw  &lt;b&gt;</code></pre>' +
        '<table><tbody><tr><th colspan="2">Head</th></tr><tr><td>a</td><td>b</td></tr></tbody></table>',
    );
    expect(storageSections(storage, 'page')[0]?.text).toBe(
      'Red site bad\n\nraw  <b>\n\nHead\na | b',
    );
  });
});

describe('storageLabels', () => {
  const TAXONOMY =
    '<p>Our labels:</p>' +
    '<table><tbody><tr><th>Colour</th><th>Hex</th></tr><tr><td>Red</td><td>#f00</td></tr></tbody></table>' +
    '<table><tbody>' +
    '<tr><th><strong>Label</strong></th><th>Description</th><th>Examples</th><th>Code</th></tr>' +
    '<tr><td>PERSON</td><td>People&rsquo;s names</td><td>Ada Lovelace</td><td>P</td></tr>' +
    '<tr><td>ORG</td><td>Companies &amp; agencies</td><td></td><td>O</td></tr>' +
    '<tr><td></td><td>(blank row)</td><td></td><td></td></tr>' +
    '</tbody></table>';

  it('reads the first table with a label column', () => {
    expect(storageLabels(TAXONOMY, { name: 'Taxonomy' })).toEqual([
      { label: 'PERSON', description: 'People’s names', examples: 'Ada Lovelace' },
      { label: 'ORG', description: 'Companies & agencies' },
    ]);
  });

  it('takes the column asked for', () => {
    expect(storageLabels(TAXONOMY, { name: 'Taxonomy', column: 'code' })).toEqual([
      { label: 'P', description: 'People’s names', examples: 'Ada Lovelace' },
      { label: 'O', description: 'Companies & agencies' },
    ]);
    expect(storageLabels(TAXONOMY, { name: 'Taxonomy', column: 'Colour' })).toEqual([
      { label: 'Red' },
    ]);
  });

  it('fails when the column asked for is in no table', () => {
    let error: SluiceError | undefined;
    try {
      storageLabels(TAXONOMY, { name: 'Taxonomy', column: 'Kind' });
    } catch (caught) {
      if (isSluiceError(caught)) error = caught;
    }
    expect(error?.code).toBe('CONVERT');
    expect(error?.message).toBe('Taxonomy: no table with a "Kind" column');
    expect(error?.hint).toBe(
      "the page's tables have the columns: [Colour, Hex] [Label, Description, Examples, Code]",
    );
  });

  it('falls back to the bulleted list, leaving headings and introductions out', () => {
    const storage =
      '<h1>Labels</h1><p>Use these:</p>' +
      '<ul><li><p><strong>BUG</strong>: something is broken</p></li><li>FEATURE &ndash; a wish</li><li>QUESTION</li></ul>' +
      '<table><tbody><tr><th>Owner</th></tr><tr><td>Ada</td></tr></tbody></table>';
    expect(storageLabels(storage, { name: 'Labels' })).toEqual([
      { label: 'BUG', description: 'something is broken' },
      { label: 'FEATURE', description: 'a wish' },
      { label: 'QUESTION' },
    ]);
  });

  it('falls back to lines when the page has no list', () => {
    const storage = '<h2>Labels</h2><p>POSITIVE<br />NEGATIVE</p><p>NEUTRAL</p>';
    expect(storageLabels(storage, { name: 'Labels' })).toEqual([
      { label: 'POSITIVE' },
      { label: 'NEGATIVE' },
      { label: 'NEUTRAL' },
    ]);
  });

  it('fails with a hint when the page has neither', () => {
    const storage = '<h1>Labels</h1><ac:structured-macro ac:name="toc" /><p>&nbsp;</p>';
    expect(() => storageLabels(storage, { name: 'Empty page' })).toThrow(
      expect.objectContaining({
        code: 'CONVERT',
        message: 'Empty page: no labels found on the page',
        hint: 'put the labels in a table with a "Label" column, or in a bulleted list',
      }),
    );
  });
});
